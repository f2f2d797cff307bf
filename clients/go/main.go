// franz-go driver: see clients/README.md for the workload.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	name       = "franz-go"
	partitions = 3
	perCodec   = 30
)

var (
	bootstrap = flag.String("bootstrap", "", "broker host:port")
	topic     = flag.String("topic", "", "topic name")
	phase     = flag.String("phase", "all", "all | produce | produce-consume | verify-only | group | auto-create | cluster | throttle")
	codecsArg = flag.String("codecs", "none,gzip,snappy,lz4,zstd", "codecs to produce with")
	timeoutS  = flag.Float64("timeout", 60, "seconds to wait per step")
	timeout   = new(time.Duration)
	codecs    []string
)

type failure struct{ msg string }

func (f failure) Error() string { return f.msg }

func fail(format string, args ...any) error { return failure{fmt.Sprintf(format, args...)} }

type rec struct {
	partition  int32
	key, value []byte
	headers    []kgo.RecordHeader
}

func records(codec string) []rec {
	out := make([]rec, 0, perCodec)
	for i := 0; i < perCodec; i++ {
		p := int32(i % partitions)
		out = append(out, rec{
			partition: p,
			key:       []byte(fmt.Sprintf("key-%s-%d", codec, i)),
			value:     []byte(fmt.Sprintf("value-%s-%d:", codec, i) + strings.Repeat("sluice-", i%7*5)),
			headers: []kgo.RecordHeader{
				{Key: "codec", Value: []byte(codec)},
				{Key: "partition", Value: []byte(strconv.Itoa(int(p)))},
			},
		})
	}
	return out
}

func expected() map[int32][]rec {
	m := map[int32][]rec{}
	for _, c := range codecs {
		for _, r := range records(c) {
			m[r.partition] = append(m[r.partition], r)
		}
	}
	return m
}

func step(s string) { fmt.Printf("[%s] %s\n", time.Now().Format("15:04:05"), s) }

func codecOf(c string) (kgo.CompressionCodec, error) {
	switch c {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.NoCompression(), fail("unknown codec %q", c)
}

func newAdmin() (*kadm.Client, *kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

func waitTopic(ctx context.Context, adm *kadm.Client, present bool) (kadm.TopicDetail, error) {
	deadline := time.Now().Add(*timeout)
	for time.Now().Before(deadline) {
		td, err := adm.ListTopics(ctx, *topic)
		if err == nil {
			d, ok := td[*topic]
			exists := ok && d.Err == nil
			if present && exists && len(d.Partitions) == partitions {
				return d, nil
			}
			if !present && !exists {
				return d, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	state := "not visible with 3 partitions"
	if !present {
		state = "still listed"
	}
	return kadm.TopicDetail{}, fail("topic %s %s after %s", *topic, state, *timeout)
}

func printTopicID(ctx context.Context, adm *kadm.Client) error {
	d, err := waitTopic(ctx, adm, true)
	if err != nil {
		return err
	}
	fmt.Printf("TOPIC_ID=%s\n", d.ID)
	return nil
}

func create(ctx context.Context, adm *kadm.Client) error {
	step(fmt.Sprintf("create topic %s with %d partitions", *topic, partitions))
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, *topic)
	if err != nil {
		return err
	}
	if resp.Err != nil {
		return fmt.Errorf("create topic: %w", resp.Err)
	}
	_, err = waitTopic(ctx, adm, true)
	return err
}

func produce(ctx context.Context) error {
	for _, c := range codecs {
		step(fmt.Sprintf("produce %d records with compression %s", perCodec, c))
		codec, err := codecOf(c)
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(*bootstrap),
			kgo.ProducerBatchCompression(codec),
			kgo.MaxProduceRequestsInflightPerBroker(1),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(20*time.Millisecond),
			kgo.RecordDeliveryTimeout(*timeout),
			// The tests SIGKILL the broker mid-produce. franz-go takes
			// an EOF on a new connection's first read for a TLS or SASL
			// misconfiguration and does not retry it, so a kill that lands
			// on the first request after a restart (InitProducerId) would
			// end the run; its docs prescribe this option for a known-good
			// configuration.
			kgo.AlwaysRetryEOF(),
		)
		if err != nil {
			return err
		}
		var rs []*kgo.Record
		for _, r := range records(c) {
			rs = append(rs, &kgo.Record{Topic: *topic, Partition: r.partition, Key: r.key, Value: r.value, Headers: r.headers})
		}
		err = cl.ProduceSync(ctx, rs...).FirstErr()
		cl.Close()
		if err != nil {
			return fmt.Errorf("produce %s: %w", c, err)
		}
	}
	return nil
}

// produceAutoCreate produces to a topic nobody created. franz-go asks for
// auto-creation only when told to (AllowAutoTopicCreation); every record must
// then be delivered without an error reaching the caller.
func produceAutoCreate(ctx context.Context) error {
	step(fmt.Sprintf("produce %d records to %s, which does not exist yet", perCodec, *topic))
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(*bootstrap),
		kgo.AllowAutoTopicCreation(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(*timeout),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := 0; i < perCodec; i++ {
		rs = append(rs, &kgo.Record{Topic: *topic, Key: []byte(fmt.Sprintf("key-auto-%d", i)), Value: []byte(fmt.Sprintf("value-auto-%d", i))})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return fmt.Errorf("produce to a new topic: %w", err)
	}
	fmt.Printf("DELIVERED=%d\n", len(rs))
	return nil
}

func showHeaders(hs []kgo.RecordHeader) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s=%s ", h.Key, h.Value)
	}
	return "[" + b.String() + "]"
}

func consume(ctx context.Context, adm *kadm.Client) error {
	want := expected()
	step("consume every partition from the beginning")
	offs := map[int32]kgo.Offset{}
	for p := int32(0); p < partitions; p++ {
		offs[p] = kgo.NewOffset().At(0)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*topic: offs}))
	if err != nil {
		return err
	}
	defer cl.Close()
	total := 0
	for _, w := range want {
		total += len(w)
	}
	got := map[int32][]*kgo.Record{}
	n := 0
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	for n < total {
		fs := cl.PollFetches(cctx)
		if cctx.Err() != nil {
			break
		}
		for _, e := range fs.Errors() {
			return fmt.Errorf("fetch error on %s/%d: %w", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r)
			n++
		})
	}
	for p := int32(0); p < partitions; p++ {
		g, w := got[p], want[p]
		if len(g) != len(w) {
			return fail("partition %d: consumed %d records, expected %d", p, len(g), len(w))
		}
		for i := range g {
			if g[i].Offset != int64(i) {
				return fail("partition %d: record #%d has offset %d", p, i, g[i].Offset)
			}
			if !bytes.Equal(g[i].Key, w[i].key) || !bytes.Equal(g[i].Value, w[i].value) {
				return fail("partition %d offset %d: got key=%q value=%q, expected key=%q value=%q", p, i, g[i].Key, g[i].Value, w[i].key, w[i].value)
			}
			if showHeaders(g[i].Headers) != showHeaders(w[i].headers) {
				return fail("partition %d offset %d: got headers %s, expected %s", p, i, showHeaders(g[i].Headers), showHeaders(w[i].headers))
			}
		}
	}

	step("list offsets (earliest, latest)")
	starts, err := adm.ListStartOffsets(ctx, *topic)
	if err != nil {
		return err
	}
	ends, err := adm.ListEndOffsets(ctx, *topic)
	if err != nil {
		return err
	}
	for p := int32(0); p < partitions; p++ {
		s, ok1 := starts.Lookup(*topic, p)
		e, ok2 := ends.Lookup(*topic, p)
		if !ok1 || !ok2 || s.Err != nil || e.Err != nil {
			return fail("list offsets partition %d: start=%+v end=%+v", p, s, e)
		}
		if s.Offset != 0 || e.Offset != int64(len(want[p])) {
			return fail("list offsets partition %d: earliest %d latest %d, expected 0 and %d", p, s.Offset, e.Offset, len(want[p]))
		}
	}
	return nil
}

func deleteTopic(ctx context.Context, adm *kadm.Client) error {
	step("delete topic " + *topic)
	resp, err := adm.DeleteTopic(ctx, *topic)
	if err != nil {
		return err
	}
	if resp.Err != nil {
		return fmt.Errorf("delete topic: %w", resp.Err)
	}
	_, err = waitTopic(ctx, adm, false)
	return err
}

func run() error {
	ctx := context.Background()
	adm, cl, err := newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	if *phase == "auto-create" {
		return produceAutoCreate(ctx)
	}
	if *phase == "all" || *phase == "produce" || *phase == "produce-consume" {
		if err := create(ctx, adm); err != nil {
			return err
		}
		if err := printTopicID(ctx, adm); err != nil {
			return err
		}
		if err := produce(ctx); err != nil {
			return err
		}
	}
	if *phase == "all" || *phase == "produce-consume" {
		if err := consume(ctx, adm); err != nil {
			return err
		}
	}
	if *phase == "all" || *phase == "verify-only" {
		if err := printTopicID(ctx, adm); err != nil {
			return err
		}
		if err := consume(ctx, adm); err != nil {
			return err
		}
		if err := deleteTopic(ctx, adm); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	flag.Parse()
	*timeout = time.Duration(*timeoutS * float64(time.Second))
	if *phase == "cluster" && *bootstrap != "" && *topic != "" && *stopFile != "" {
		// Prints its own OK line (with counts).
		if err := runCluster(); err != nil {
			fmt.Printf("FAIL %s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	if *phase == "throttle" && *bootstrap != "" && *topic != "" {
		if err := runThrottle(); err != nil {
			fmt.Printf("FAIL %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Printf("OK %s\n", name)
		return
	}
	if *phase == "group" && *bootstrap != "" && *topic != "" {
		if err := groupMember(); err != nil {
			fmt.Printf("FAIL %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Printf("OK %s\n", name)
		return
	}
	if *bootstrap == "" || *topic == "" || (*phase != "all" && *phase != "produce" && *phase != "produce-consume" && *phase != "verify-only" && *phase != "auto-create") {
		flag.Usage()
		os.Exit(2)
	}
	for _, c := range strings.Split(*codecsArg, ",") {
		if c != "" {
			codecs = append(codecs, c)
		}
	}
	if err := run(); err != nil {
		var f failure
		if !errors.As(err, &f) {
			fmt.Printf("error: %v\n", err)
		}
		fmt.Printf("FAIL %s: %v\n", name, err)
		os.Exit(1)
	}
	fmt.Printf("OK %s\n", name)
}
