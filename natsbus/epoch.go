package natsbus

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// epochSpace is the UUID namespace of natsbus epochs.
var epochSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/whalesong/bus/natsbus#epoch"))

// epochOf names a stream's incarnation: a version 5 UUID of its name, the
// time the server created it and the generation in its metadata. Every
// node computes the same value from the stream's info, with no write and no
// race; it survives server restarts and leader changes (the server persists
// Created) and changes when the stream is deleted and recreated (a new
// Created) or restored from a backup (the server sets a new Created), and
// when natsbus raises the generation after it detected a rewind.
func epochOf(info *jetstream.StreamInfo) string {
	name := info.Config.Name + "\n" + info.Created.UTC().Format(time.RFC3339Nano) + "\n" + info.Config.Metadata[genKey]
	return uuid.NewSHA1(epochSpace, []byte(name)).String()
}

// bumpGeneration raises the stream's generation by one, so that every node
// sees a new epoch, unless the stream is no longer the incarnation seen
// (another node raised it first, or it was recreated): nodes racing here
// all write the same next value.
func bumpGeneration(ctx context.Context, js jetstream.JetStream, seen *jetstream.StreamInfo) error {
	cur, err := streamInfo(ctx, js, seen.Config.Name)
	if err != nil {
		return err
	}
	if epochOf(cur) != epochOf(seen) {
		return nil
	}
	gen, _ := strconv.ParseUint(cur.Config.Metadata[genKey], 10, 64)
	cfg := cur.Config
	cfg.Metadata = maps.Clone(cfg.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[genKey] = strconv.FormatUint(gen+1, 10)
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := js.UpdateStream(rctx, cfg); err != nil {
		return fmt.Errorf("raise the generation of stream %s: %w", quote(cfg.Name), err)
	}
	return nil
}
