//go:build race

package server

// raceOn: the race detector runs this package 5–10 times slower, so the
// tests at scale scale down (the plain run keeps their full size).
const raceOn = true
