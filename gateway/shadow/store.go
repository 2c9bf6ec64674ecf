package shadow

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
)

// ErrNotFound is returned by Store.Get for a key that holds no value.
var ErrNotFound = errors.New("shadow store: key not found")

// Store is where shadows, the sync outbox and the sync state live. Keys are
// printable ASCII; this package owns the whole key space it is given (a
// Badger-backed Store puts it under its own prefix, beside the queue, encrypted
// like the queue). Values are opaque bytes the Store must return unchanged.
//
// Write applies every operation of the batch or none, and is durable when it
// returns nil: a shadow update is acknowledged only after it. Get and List see
// every batch that Write has returned for. The Store may be called from several
// goroutines.
type Store interface {
	// Get returns the value of key, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns the keys that start with prefix, in byte order.
	List(ctx context.Context, prefix string) ([]string, error)
	// Write applies the batch atomically.
	Write(ctx context.Context, b *Batch) error
}

// Batch is a list of puts and deletes applied together by Store.Write.
type Batch struct {
	Ops []BatchOp
}

// BatchOp is one write: Value nil means delete Key.
type BatchOp struct {
	Key   string
	Value []byte
}

// Put adds a put of value (which must not be nil) under key.
func (b *Batch) Put(key string, value []byte) {
	if value == nil {
		value = []byte{}
	}
	b.Ops = append(b.Ops, BatchOp{Key: key, Value: value})
}

// Delete adds a delete of key.
func (b *Batch) Delete(key string) { b.Ops = append(b.Ops, BatchOp{Key: key}) }

// MemStore is a Store in memory, for tests and for a gateway that runs without a
// database. It loses everything when the process ends.
type MemStore struct {
	mu sync.RWMutex
	m  map[string][]byte
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: map[string][]byte{}} }

var _ Store = (*MemStore)(nil)

// Get implements Store.
func (s *MemStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	return slices.Clone(v), nil
}

// List implements Store.
func (s *MemStore) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	return keys, nil
}

// Write implements Store.
func (s *MemStore) Write(ctx context.Context, b *Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range b.Ops {
		if op.Value == nil {
			delete(s.m, op.Key)
		} else {
			s.m[op.Key] = slices.Clone(op.Value)
		}
	}
	return nil
}
