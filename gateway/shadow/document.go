package shadow

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// document is one stored shadow. A deleted shadow stays as a tombstone
// (Deleted, with DeletedAt) so that a shadow created again within 48 hours
// continues its version numbers, as AWS does (device-shadow-data-flow, DELETE).
type document struct {
	Desired, Reported         map[string]any // nil when the section is absent
	MetaDesired, MetaReported map[string]any
	Version                   int64
	Timestamp                 int64 // epoch seconds of the last update
	Deleted                   bool
	DeletedAt                 int64
}

// tombstoneTTL is how long a deleted shadow's version is remembered.
const tombstoneTTL = 48 * 3600

// baseVersion is the version a new update builds on at time ts.
func (d *document) baseVersion(ts int64) int64 {
	if d == nil {
		return 0
	}
	if d.Deleted && ts-d.DeletedAt > tombstoneTTL {
		return 0
	}
	return d.Version
}

func (d *document) live() bool { return d != nil && !d.Deleted }

func (d *document) clone() *document {
	c := *d
	c.Desired, c.Reported = cloneMap(d.Desired), cloneMap(d.Reported)
	c.MetaDesired, c.MetaReported = cloneMap(d.MetaDesired), cloneMap(d.MetaReported)
	return &c
}

// section returns pointers to a section and its metadata by name.
func (d *document) section(name string) (*map[string]any, *map[string]any) {
	if name == "desired" {
		return &d.Desired, &d.MetaDesired
	}
	return &d.Reported, &d.MetaReported
}

// state is the document's state object: the sections present.
func (d *document) state() map[string]any {
	s := make(map[string]any, 3)
	if d.Desired != nil {
		s["desired"] = d.Desired
	}
	if d.Reported != nil {
		s["reported"] = d.Reported
	}
	return s
}

func (d *document) metadata() map[string]any {
	m := make(map[string]any, 3)
	if d.Desired != nil {
		m["desired"] = d.MetaDesired
	}
	if d.Reported != nil {
		m["reported"] = d.MetaReported
	}
	return m
}

// marshal gives the persisted form: the shadow document AWS returns for GET,
// plus the tombstone fields. It is JSON so that a stored shadow is readable with
// any tool.
func (d *document) marshal() []byte {
	m := map[string]any{"version": d.Version, "timestamp": d.Timestamp}
	if d.Deleted {
		m["deleted"], m["deletedAt"] = true, d.DeletedAt
	} else {
		m["state"], m["metadata"] = d.state(), d.metadata()
	}
	return encode(m)
}

func unmarshalDocument(b []byte) (*document, error) {
	m, ok := decodeObject(b)
	if !ok {
		return nil, fmt.Errorf("stored shadow is not a JSON object")
	}
	d := &document{}
	var err error
	if d.Version, err = intField(m, "version"); err != nil {
		return nil, err
	}
	if d.Timestamp, err = intField(m, "timestamp"); err != nil {
		return nil, err
	}
	if _, ok := m["deletedAt"]; ok {
		if d.DeletedAt, err = intField(m, "deletedAt"); err != nil {
			return nil, err
		}
	}
	d.Deleted, _ = m["deleted"].(bool)
	st, _ := m["state"].(map[string]any)
	md, _ := m["metadata"].(map[string]any)
	d.Desired, _ = st["desired"].(map[string]any)
	d.Reported, _ = st["reported"].(map[string]any)
	d.MetaDesired, _ = md["desired"].(map[string]any)
	d.MetaReported, _ = md["reported"].(map[string]any)
	if d.Desired != nil && d.MetaDesired == nil {
		d.MetaDesired = map[string]any{}
	}
	if d.Reported != nil && d.MetaReported == nil {
		d.MetaReported = map[string]any{}
	}
	return d, nil
}

func intField(m map[string]any, k string) (int64, error) {
	n, ok := m[k].(json.Number)
	if !ok {
		return 0, fmt.Errorf("stored shadow: %q is not a number", k)
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stored shadow: %q: %w", k, err)
	}
	return v, nil
}
