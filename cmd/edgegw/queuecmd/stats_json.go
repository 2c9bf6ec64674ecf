package queuecmd

import "github.com/edgegw/edgegw/store"

// StatsJSON is `edgegw queue stats -o json` (see the JSON output convention
// of `edgegw help`).
type StatsJSON struct {
	DepthMessages  int64            `json:"depth"`
	Bytes          int64            `json:"bytes"`
	MaxBytes       int64            `json:"max_bytes"`
	FreeBytes      uint64           `json:"disk_free_bytes"`
	MinFreeBytes   uint64           `json:"disk_min_free_bytes"`
	RejectedFull   uint64           `json:"rejected_full"`
	DeadLetters    int64            `json:"dead_letters"`
	NextSeq        uint64           `json:"next_seq"`
	CorruptMovedTo string           `json:"corrupt_moved_to,omitempty"`
	Routes         []routeStatsJSON `json:"routes"`
}

type routeStatsJSON struct {
	Name             string            `json:"name"`
	Configured       bool              `json:"configured"`
	Priority         int               `json:"priority"`
	Depth            int64             `json:"depth"`
	Bytes            int64             `json:"bytes"`
	InFlight         int               `json:"inflight"`
	OldestSeq        uint64            `json:"oldest_seq"`
	OldestAgeSeconds float64           `json:"oldest_age_seconds"`
	Enqueued         uint64            `json:"enqueued"`
	Acked            uint64            `json:"acked"`
	Rejected         uint64            `json:"rejected"`
	Drops            map[string]uint64 `json:"drops"`
	DeadLettered     uint64            `json:"dead_lettered"`
	DeadLetters      int64             `json:"dead_letters"`
	DeadBytes        int64             `json:"dead_bytes"`
}

func statsView(st store.Stats) StatsJSON {
	v := StatsJSON{DepthMessages: st.Depth, Bytes: st.Bytes, MaxBytes: st.MaxBytes, FreeBytes: st.FreeBytes,
		MinFreeBytes: st.MinFreeBytes, RejectedFull: st.RejectedFull, DeadLetters: st.DeadLetters, NextSeq: st.NextSeq,
		CorruptMovedTo: st.CorruptMovedTo, Routes: []routeStatsJSON{}}
	for _, r := range st.Routes {
		drops := map[string]uint64{}
		for k, n := range r.Drops {
			drops[k] = n
		}
		v.Routes = append(v.Routes, routeStatsJSON{Name: r.Name, Configured: r.Configured, Priority: r.Priority,
			Depth: r.Depth, Bytes: r.Bytes, InFlight: r.InFlight, OldestSeq: r.OldestSeq, OldestAgeSeconds: r.OldestAge.Seconds(),
			Enqueued: r.Enqueued, Acked: r.Acked, Rejected: r.Rejected, Drops: drops, DeadLettered: r.DeadLettered,
			DeadLetters: r.DeadLetters, DeadBytes: r.DeadBytes})
	}
	return v
}
