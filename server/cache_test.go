package server

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// The introspection cache is the token cache's bounded CLOCK cache: full, it
// keeps a hot answer and the newest one, and it never exceeds its bound.
func TestIntroCacheIsBoundedAndKeepsHotEntries(t *testing.T) {
	c := newIntroCache(cacheShards * 3) // 4 per shard
	now := time.Unix(1_700_000_000, 0)
	deadline := now.Add(time.Hour)
	var sameShard []cacheKey
	for i := 0; len(sameShard) < 12; i++ {
		if k := tokenKey(fmt.Sprint("t", i)); k[0]%cacheShards == 0 {
			sameShard = append(sameShard, k)
		}
	}
	for i := range 4 {
		c.put(sameShard[i], &Identity{Subject: fmt.Sprint(i)}, nil, deadline, now)
	}
	for i := 4; i < 12; i++ {
		if id, _, ok := c.get(sameShard[0], now); !ok || id.Subject != "0" {
			t.Fatalf("hot answer evicted after %d inserts", i-4)
		}
		c.put(sameShard[i], &Identity{Subject: fmt.Sprint(i)}, nil, deadline, now)
	}
	if _, _, ok := c.get(sameShard[1], now); ok {
		t.Error("a cold answer survived while the shard turned over twice")
	}
	if id, _, ok := c.get(sameShard[11], now); !ok || id.Subject != "11" {
		t.Errorf("the newest answer was evicted: %v", id)
	}
	// A flood of other answers evicts cold ones, never the one in use.
	for i := range 2000 {
		if _, _, ok := c.get(sameShard[0], now); !ok {
			t.Fatalf("hot answer evicted by a flood of %d others", i)
		}
		c.put(tokenKey(fmt.Sprint("u", i)), nil, errors.New("refused"), deadline, now)
	}
	if n := c.c.len(); n > cacheShards*4 {
		t.Errorf("cache holds %d answers, more than its bound %d", n, cacheShards*4)
	}
}

func TestIntroCacheAnswerExpiresAtItsDeadline(t *testing.T) {
	c := newIntroCache(16)
	now := time.Unix(1_700_000_000, 0)
	k := tokenKey("refused")
	refusal := &TokenError{Reason: "not active"}
	c.put(k, nil, refusal, now.Add(5*time.Second), now)
	if _, err, ok := c.get(k, now.Add(5*time.Second-time.Nanosecond)); !ok || !errors.Is(err, refusal) {
		t.Fatalf("before the deadline: ok=%v err=%v, want the cached refusal", ok, err)
	}
	if _, _, ok := c.get(k, now.Add(5*time.Second)); ok {
		t.Error("the answer was still returned at its deadline")
	}
}
