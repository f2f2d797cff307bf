package main

// Phase "group": one consumer-group member for crates/sluice/tests/group_clients.rs.
// It subscribes to the topic in group "<topic>-group" (earliest, no auto-commit)
// and prints ASSIGNED [..], RECORD p offset and COMMITTED p next lines until its
// stdin is closed, then leaves the group.

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func groupMember() error {
	var mu sync.Mutex
	owned := map[int32]bool{}
	change := func(m map[string][]int32, add bool) {
		mu.Lock()
		defer mu.Unlock()
		for _, ps := range m {
			for _, p := range ps {
				if add {
					owned[p] = true
				} else {
					delete(owned, p)
				}
			}
		}
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(*bootstrap),
		kgo.ConsumerGroup(*topic+"-group"),
		kgo.ConsumeTopics(*topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(10*time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { change(m, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { change(m, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { change(m, false) }),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	last := "none"
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fetches := cl.PollFetches(ctx)
		cancel()
		mu.Lock()
		ps := make([]int, 0, len(owned))
		for p := range owned {
			ps = append(ps, int(p))
		}
		mu.Unlock()
		sort.Ints(ps)
		parts := make([]string, len(ps))
		for i, p := range ps {
			parts[i] = fmt.Sprint(p)
		}
		now := "[" + strings.Join(parts, ", ") + "]"
		if now != last {
			last = now
			fmt.Println("ASSIGNED " + now)
		}
		done := map[int32]int64{}
		fetches.EachRecord(func(r *kgo.Record) {
			fmt.Printf("RECORD %d %d\n", r.Partition, r.Offset)
			done[r.Partition] = r.Offset + 1
		})
		if len(done) > 0 {
			if err := cl.CommitUncommittedOffsets(context.Background()); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			keys := make([]int, 0, len(done))
			for p := range done {
				keys = append(keys, int(p))
			}
			sort.Ints(keys)
			for _, p := range keys {
				fmt.Printf("COMMITTED %d %d\n", p, done[int32(p)])
			}
		}
	}
}
