// The "throttle" phase (client quotas, issue 21): produce -records records
// of 1000 bytes with client id -client-id, acks=1, counting the throttles
// the broker answers (franz-go's OnBrokerThrottle hook; franz-go waits them
// out before its next request to that broker, KIP-219). Prints
// `SENT=<bytes> SECS=<s> THROTTLES=<n> MAX_THROTTLE_MS=<ms> ERRORS=<n>`.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	clientID        = flag.String("client-id", "franz-go-driver", "client id (throttle phase)")
	throttleRecords = flag.Int("records", 3000, "records to produce (throttle phase)")
)

type throttleHook struct {
	count atomic.Int64
	maxMs atomic.Int64
}

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.count.Add(1)
	ms := d.Milliseconds()
	for {
		cur := h.maxMs.Load()
		if ms <= cur || h.maxMs.CompareAndSwap(cur, ms) {
			return
		}
	}
}

func runThrottle() error {
	hook := &throttleHook{}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(*bootstrap),
		kgo.ClientID(*clientID),
		kgo.WithHooks(hook),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.DisableIdempotentWrite(),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.DefaultProduceTopic(*topic),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// Random values: franz-go compresses by default, and the quota counts
	// the bytes on the wire.
	value := make([]byte, 1000)
	var wg sync.WaitGroup
	var errs atomic.Int64
	start := time.Now()
	for i := 0; i < *throttleRecords; i++ {
		wg.Add(1)
		v := make([]byte, len(value))
		rand.Read(v)
		cl.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				errs.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("SENT=%d SECS=%.3f THROTTLES=%d MAX_THROTTLE_MS=%d ERRORS=%d\n",
		*throttleRecords*len(value), secs, hook.count.Load(), hook.maxMs.Load(), errs.Load())
	return nil
}
