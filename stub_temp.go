package bus

import (
	"context"
	"time"
)

// TEMPORARY stub so other packages compile while the core is written.

type Event[T any] struct {
	Seq   uint64
	Topic string
	Time  time.Time
	Data  T
}

type Policy int

const (
	Block Policy = iota
	DropOldest
	DropNewest
	Disconnect
)

type Stats struct {
	Published, Delivered, Dropped uint64
	Subscribers, Topics, Retained int
}

type Bus[T any] struct{}

func New[T any](opts ...Option) *Bus[T] { return &Bus[T]{} }
func (b *Bus[T]) Publish(ctx context.Context, topic string, data T) (uint64, error) {
	panic("stub")
}
func (b *Bus[T]) Subscribe(pattern string, opts ...SubscribeOption) (*Subscription[T], error) {
	panic("stub")
}
func (b *Bus[T]) History(pattern string, after uint64, limit int) ([]Event[T], error) {
	panic("stub")
}
func (b *Bus[T]) Replay(pattern string, opts ...SubscribeOption) ([]Event[T], bool, error) {
	panic("stub")
}
func (b *Bus[T]) Seq() uint64   { panic("stub") }
func (b *Bus[T]) Epoch() string { panic("stub") }
func (b *Bus[T]) Stats() Stats  { panic("stub") }
func (b *Bus[T]) Close() error  { panic("stub") }

type Subscription[T any] struct{}

func (s *Subscription[T]) C() <-chan Event[T]                         { panic("stub") }
func (s *Subscription[T]) Next(ctx context.Context) (Event[T], error) { panic("stub") }
func (s *Subscription[T]) Close() error                               { panic("stub") }
func (s *Subscription[T]) Err() error                                 { panic("stub") }
func (s *Subscription[T]) Recovered() bool                            { panic("stub") }
func (s *Subscription[T]) Dropped() uint64                            { panic("stub") }
func (s *Subscription[T]) Pattern() string                            { panic("stub") }
