// Package clock is edgegw's clock guard and build information: the one
// owner of the "is the clock sane" floor.
//
// A Raspberry Pi has no real-time clock: it boots in 1970 (or at the last
// fake-hwclock save) until NTP answers. A time before the binary's build date
// is certainly wrong, so certificate checks use the build date instead
// (Clock.Now) and message ages are treated as unknown (Clock.AgeNow).
//
// It is a leaf: it imports nothing of edgegw.
package clock
