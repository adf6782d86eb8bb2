package main

import "time"

// partitionsRun is `microshop chaos --partitions`.
type partitionsRun struct {
	seed                             uint64
	duration, settle, every, freeze  time.Duration
	shoppers                         int
	keep                             bool
	minGap, maxGap, minLast, maxLast time.Duration
}
