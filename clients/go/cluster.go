package main

// The `cluster` phase: see clients/README.md ("Multi-node cluster") and
// clients/python/cluster_driver.py, which runs the same steps.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const clusterPerPartition = 20

var (
	clusterPartitions = flag.Int("partitions", 6, "partitions of the cluster phase's topic")
	stopFile          = flag.String("stop-file", "", "the cluster phase stops its produce loop once this file exists")
	loopLimit         = flag.Duration("loop-limit", 400*time.Second, "longest the cluster phase's produce loop waits for the stop file")
)

type pOff struct {
	p   int32
	off int64
}

type clusterAcks struct {
	mu     sync.Mutex
	acked  map[pOff]string
	failed []string
	// Offsets acknowledged for two different records: the first was lost.
	reused []string
}

func (a *clusterAcks) send(ctx context.Context, cl *kgo.Client, p int32, value string, done func(error)) {
	r := &kgo.Record{Topic: *topic, Partition: p, Key: []byte(value), Value: []byte(value)}
	cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		a.mu.Lock()
		if err == nil {
			k := pOff{r.Partition, r.Offset}
			if old, ok := a.acked[k]; ok && old != value {
				a.reused = append(a.reused, fmt.Sprintf("%d@%d: %s then %s", k.p, k.off, old, value))
			}
			a.acked[k] = value
		} else {
			a.failed = append(a.failed, fmt.Sprintf("%d %s: %v", p, value, err))
		}
		a.mu.Unlock()
		if done != nil {
			done(err)
		}
	})
}

func (a *clusterAcks) snapshot() (map[pOff]string, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[pOff]string, len(a.acked))
	for k, v := range a.acked {
		m[k] = v
	}
	return m, append([]string(nil), a.failed...)
}

// clusterReadAll reads every partition from 0 to its end offset by
// assignment and checks that every expected offset holds its value.
func clusterReadAll(ctx context.Context, adm *kadm.Client, expected map[pOff]string, what string) error {
	ends, err := adm.ListEndOffsets(ctx, *topic)
	if err != nil {
		return err
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	for p := int32(0); p < int32(*clusterPartitions); p++ {
		o, ok := ends.Lookup(*topic, p)
		if !ok || o.Err != nil {
			return fail("%s: no end offset for partition %d: %v", what, p, o.Err)
		}
		want[p] = o.Offset
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(*bootstrap), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*topic: offsets}))
	if err != nil {
		return err
	}
	defer cl.Close()
	seen := map[pOff]string{}
	pos := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(*timeout)
	for !done() {
		if time.Now().After(deadline) {
			return fail("%s: positions %v short of end offsets %v", what, pos, want)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			seen[pOff{r.Partition, r.Offset}] = string(r.Value)
			if r.Offset+1 > pos[r.Partition] {
				pos[r.Partition] = r.Offset + 1
			}
		})
	}
	missing := 0
	for k, v := range expected {
		if seen[k] != v {
			missing++
		}
	}
	if missing > 0 {
		return fail("%s: %d acknowledged records not read back", what, missing)
	}
	step(fmt.Sprintf("%s: read %d records, every acknowledged one at its offset", what, len(seen)))
	return nil
}

func clusterGroupRead(ctx context.Context, adm *kadm.Client, expected map[pOff]string) error {
	group := *topic + "-group"
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(*bootstrap),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(*topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	seen := map[pOff]bool{}
	deadline := time.Now().Add(*timeout)
	for len(seen) < len(expected) {
		if time.Now().After(deadline) {
			return fail("group %s: read %d of %d records", group, len(seen), len(expected))
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			k := pOff{r.Partition, r.Offset}
			if v, ok := expected[k]; ok && v == string(r.Value) {
				seen[k] = true
			}
		})
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return fail("group %s: commit: %v", group, err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fail("group %s: fetch offsets: %v", group, err)
	}
	for p := int32(0); p < int32(*clusterPartitions); p++ {
		var want int64
		for k := range expected {
			if k.p == p && k.off+1 > want {
				want = k.off + 1
			}
		}
		o, ok := committed.Lookup(*topic, p)
		if !ok || o.At != want {
			return fail("group %s: committed %+v on partition %d, expected %d", group, o, p, want)
		}
	}
	cl.LeaveGroup()
	fmt.Printf("GROUP_READ %d\n", len(seen))
	return nil
}

// clusterGroupResume: a new member of <topic>-group starts on every
// partition exactly at the offset committed before its coordinator was
// killed.
func clusterGroupResume(ctx context.Context) error {
	group := *topic + "-group"
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(*bootstrap),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(*topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	first := map[int32]int64{}
	deadline := time.Now().Add(*timeout)
	for len(first) < *clusterPartitions {
		if time.Now().After(deadline) {
			return fail("group %s after the restart: first offsets %v", group, first)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if _, ok := first[r.Partition]; !ok {
				first[r.Partition] = r.Offset
			}
		})
	}
	for p, o := range first {
		if o != clusterPerPartition {
			return fail("group %s resumed partition %d at %d, not at the committed %d", group, p, o, clusterPerPartition)
		}
	}
	cl.LeaveGroup()
	fmt.Printf("GROUP_RESUMED %d\n", clusterPerPartition)
	return nil
}

func runCluster() error {
	ctx := context.Background()
	adm, admCl, err := newAdmin()
	if err != nil {
		return err
	}
	defer admCl.Close()
	deadline := time.Now().Add(*timeout)
	for {
		td, err := adm.ListTopics(ctx, *topic)
		if err == nil && td.Has(*topic) && len(td[*topic].Partitions) == *clusterPartitions {
			break
		}
		if time.Now().After(deadline) {
			return fail("%s not visible with %d partitions", *topic, *clusterPartitions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// acks=all with idempotence, franz-go's defaults (spelled out): an
	// acknowledged record is on every in-sync replica (at least
	// min.insync.replicas=2), so it survives the SIGKILL of its leader,
	// and retries are not written twice.
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(*bootstrap),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(120*time.Second),
		kgo.MetadataMaxAge(5*time.Second),
	)
	if err != nil {
		return err
	}
	acks := &clusterAcks{acked: map[pOff]string{}}
	for p := int32(0); p < int32(*clusterPartitions); p++ {
		for i := 0; i < clusterPerPartition; i++ {
			acks.send(ctx, cl, p, fmt.Sprintf("first-%d-%d", p, i), nil)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, *timeout)
	err = cl.Flush(fctx)
	cancel()
	first, failed := acks.snapshot()
	if err != nil || len(failed) > 0 || len(first) != *clusterPartitions*clusterPerPartition {
		return fail("first batch: %d acknowledged, flush %v, failures %v", len(first), err, failed)
	}
	fmt.Printf("PRODUCED %d\n", len(first))
	if err := clusterReadAll(ctx, adm, first, "assign"); err != nil {
		return err
	}
	if err := clusterGroupRead(ctx, adm, first); err != nil {
		return err
	}

	fmt.Println("LOOP_STARTED")
	started, lastReport := time.Now(), time.Time{}
	round := 0
	for {
		if _, err := os.Stat(*stopFile); err == nil {
			break
		}
		if time.Since(started) > *loopLimit {
			return fail("no stop file after %v", *loopLimit)
		}
		for p := int32(0); p < int32(*clusterPartitions); p++ {
			acks.send(ctx, cl, p, fmt.Sprintf("loop-%d-%d", p, round), nil)
		}
		round++
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			a, f := acks.snapshot()
			fmt.Printf("ACKED %d FAILED %d\n", len(a), len(f))
		}
		time.Sleep(100 * time.Millisecond)
	}
	step(fmt.Sprintf("stop file seen after %d rounds", round))
	var wg sync.WaitGroup
	finalErrs := make([]error, *clusterPartitions)
	for p := int32(0); p < int32(*clusterPartitions); p++ {
		wg.Add(1)
		p := p
		acks.send(ctx, cl, p, fmt.Sprintf("final-%d", p), func(err error) { finalErrs[p] = err; wg.Done() })
	}
	fctx, cancel = context.WithTimeout(ctx, 150*time.Second)
	flushErr := cl.Flush(fctx)
	cancel()
	if flushErr != nil {
		return fail("flush after the stop file: %v", flushErr)
	}
	wg.Wait()
	for p, e := range finalErrs {
		if e != nil {
			return fail("final record to partition %d not acknowledged: %v", p, e)
		}
	}
	cl.Close()
	if len(acks.reused) > 0 {
		return fail("%d offsets acknowledged for two records (the first lost), e.g. %v", len(acks.reused), acks.reused[0])
	}
	acked, failedAll := acks.snapshot()
	for p := int32(0); p < int32(*clusterPartitions); p++ {
		n := 0
		for k := range acked {
			if k.p == p {
				n++
			}
		}
		fmt.Printf("PARTITION %d acked=%d\n", p, n)
	}
	if len(failedAll) > 0 {
		step(fmt.Sprintf("%d sends failed (a leader was killed), e.g. %s", len(failedAll), failedAll[0]))
	}
	if err := clusterReadAll(ctx, adm, acked, "after the restart"); err != nil {
		return err
	}
	if err := clusterGroupResume(ctx); err != nil {
		return err
	}
	fmt.Printf("OK %s acked=%d failed=%d\n", name, len(acked), len(failedAll))
	return nil
}
