package benchmarks

import (
	"context"
	"encoding/binary"
	"math"
	"strconv"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// watermillSys is watermill's in-process GoChannel with its default
// config (Publish does not wait for acks, so delivery is not ordered).
// Messages carry []byte, so the payload is encoded in 21 bytes and decoded
// by the receiver; message IDs are cheap decimal strings, not UUIDs.
type watermillSys struct {
	ch     *gochannel.GoChannel
	ctx    context.Context
	cancel context.CancelFunc
}

func newWatermill(b *testing.B) system {
	return newWatermillWith(gochannel.Config{OutputChannelBuffer: buffer})
}

func newWatermillWith(cfg gochannel.Config) *watermillSys {
	ctx, cancel := context.WithCancel(context.Background())
	return &watermillSys{ch: gochannel.NewGoChannel(cfg, watermill.NopLogger{}), ctx: ctx, cancel: cancel}
}

func encodePayload(p payload) []byte {
	buf := make([]byte, 0, 21)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(p.ID))
	buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(p.Price))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(p.Qty))
	return append(buf, p.Side)
}

func decodePayload(buf []byte) payload {
	return payload{
		ID:    int64(binary.LittleEndian.Uint64(buf)),
		Price: math.Float64frombits(binary.LittleEndian.Uint64(buf[8:])),
		Qty:   int32(binary.LittleEndian.Uint32(buf[16:])),
		Side:  buf[20],
	}
}

func (s *watermillSys) subscribe(b *testing.B, topic string, r *receiver) {
	msgs, err := s.ch.Subscribe(s.ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for msg := range msgs {
			p := decodePayload(msg.Payload)
			msg.Ack()
			if r.take(p) {
				break
			}
		}
		for msg := range msgs { // until Close
			msg.Ack()
		}
	}()
}

func (s *watermillSys) idle(b *testing.B, topic string) {
	if _, err := s.ch.Subscribe(s.ctx, topic); err != nil {
		b.Fatal(err)
	}
}

func (s *watermillSys) publisher(b *testing.B, topic string) func(payload) {
	return func(p payload) {
		msg := message.NewMessage(strconv.FormatInt(p.ID, 10), encodePayload(p))
		if err := s.ch.Publish(topic, msg); err != nil {
			b.Error(err)
		}
	}
}

func (s *watermillSys) close() {
	s.cancel()
	s.ch.Close()
}
