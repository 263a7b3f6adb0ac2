package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// genKey is the stream metadata key that holds the generation, a part of
// the epoch that natsbus raises after it detects a rewound stream.
const genKey = "whalesong.generation"

// streamConfig is the stream New creates. Everything that could delete,
// add or rewrite a message behind the followers' backs is off: they mirror
// the stream by reading it in order, and every seq they do not see must be
// an eviction by MaxMsgsPerSubject or MaxAge.
func (c config) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              c.stream,
		Description:       "whalesong event log (github.com/whalesong/bus/natsbus)",
		Subjects:          []string{c.prefix() + ">"},
		Retention:         jetstream.LimitsPolicy,
		MaxConsumers:      -1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		Discard:           jetstream.DiscardOld,
		MaxAge:            c.ttl,
		MaxMsgsPerSubject: c.perSubject(),
		MaxMsgSize:        -1,
		Storage:           jetstream.FileStorage,
		Replicas:          c.replicas,
		Duplicates:        c.dedupWindow(),
		DenyDelete:        true,
		DenyPurge:         true,
		RePublish:         &jetstream.RePublish{Source: c.prefix() + ">", Destination: c.livePrefix() + ">"},
		Metadata:          map[string]string{genKey: "1"},
	}
}

// mismatch lists how an existing stream's configuration differs from what
// this bus needs, as "field is x, want y" phrases; nil when it fits.
func (c config) mismatch(got jetstream.StreamConfig) []string {
	want := c.streamConfig()
	var d diffs
	d.limits(got, want)
	if got.MaxMsgsPerSubject != want.MaxMsgsPerSubject {
		d.add("max_msgs_per_subject (WithHistory)", got.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	}
	if got.MaxAge != want.MaxAge {
		d.add("max_age (WithHistoryTTL)", got.MaxAge, want.MaxAge)
	}
	if got.Duplicates != want.Duplicates {
		d.add("duplicate_window", got.Duplicates, want.Duplicates)
	}
	if got.RePublish == nil || *got.RePublish != *want.RePublish {
		d.add("republish", fmtRepublish(got.RePublish), fmtRepublish(want.RePublish))
	}
	if got.Retention != want.Retention {
		d.add("retention", got.Retention, want.Retention)
	}
	return d
}

// diffs collects "field is x, want y" phrases.
type diffs []string

func (d *diffs) add(field string, got, want any) {
	*d = append(*d, fmt.Sprintf("%s is %v, want %v", field, got, want))
}

// limits adds what both of natsbus's streams need alike: their subjects,
// replicas, storage, discard policy, no count or size limit, and nothing
// that deletes messages.
func (d *diffs) limits(got, want jetstream.StreamConfig) {
	if !slices.Equal(got.Subjects, want.Subjects) {
		d.add("subjects", got.Subjects, want.Subjects)
	}
	if got.Replicas != want.Replicas {
		d.add("num_replicas (WithReplicas)", got.Replicas, want.Replicas)
	}
	if got.Storage != want.Storage {
		d.add("storage", got.Storage, want.Storage)
	}
	if got.Discard != want.Discard {
		d.add("discard", got.Discard, want.Discard)
	}
	if got.MaxMsgs > 0 {
		d.add("max_msgs", got.MaxMsgs, "unlimited")
	}
	if got.MaxBytes > 0 {
		d.add("max_bytes", got.MaxBytes, "unlimited")
	}
	*d = append(*d, deleters(got)...)
}

func fmtRepublish(r *jetstream.RePublish) string {
	if r == nil {
		return "unset"
	}
	return fmt.Sprintf("%s -> %s (headers only: %v)", r.Source, r.Destination, r.HeadersOnly)
}

// deleters lists the settings of got that delete, add or rewrite messages.
func deleters(got jetstream.StreamConfig) []string {
	flags := []struct {
		on   bool
		name string
	}{
		{!got.DenyDelete, "deny_delete is false"},
		{!got.DenyPurge, "deny_purge is false"},
		{got.AllowRollup, "allow_rollup_hdrs is true"},
		{got.AllowMsgTTL, "allow_msg_ttl is true"},
		{got.SubjectDeleteMarkerTTL > 0, "subject_delete_marker_ttl is set"},
		{got.AllowMsgCounter, "allow_msg_counter is true"},
		{got.AllowMsgSchedules, "allow_msg_schedules is true"},
		{got.Sealed, "sealed is true"},
		{got.NoAck, "no_ack is true"},
		{got.Mirror != nil, "mirror is set"},
		{len(got.Sources) > 0, "sources are set"},
		{got.SubjectTransform != nil, "subject_transform is set"},
	}
	var out []string
	for _, f := range flags {
		if f.on {
			out = append(out, f.name)
		}
	}
	return out
}

// Per-request bounds: one request to a cluster without a meta leader can
// hang for as long as its ctx allows, so each try gets its own short one.
const (
	requestTimeout = 2 * time.Second
	retryMin       = 50 * time.Millisecond
	retryMax       = time.Second
)

// ensureStream creates the event stream or checks the existing one.
func ensureStream(ctx context.Context, js jetstream.JetStream, c config, refused func() error) error {
	return ensure(ctx, js, c.streamConfig(), c.mismatch, refused)
}

// ensure creates the stream want names, or checks the existing one with
// mismatch, retrying transient failures until ctx ends, or until refused
// says that the account does not allow the requests.
func ensure(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, mismatch func(jetstream.StreamConfig) []string, refused func() error) error {
	var last error
	for wait := retryMin; ; wait = min(2*wait, retryMax) {
		err := ensureOnce(ctx, js, want, mismatch)
		if err == nil || errors.Is(err, ErrStreamMismatch) {
			return err
		}
		if perr := refused(); perr != nil {
			return fmt.Errorf("%w: stream %s: %w", ErrStream, quote(want.Name), perr)
		}
		if !transient(err) {
			return err
		}
		last = err
		if !sleep(ctx, wait) {
			return fmt.Errorf("%w: stream %s: %w (last error: %w)", ErrStream, quote(want.Name), ctx.Err(), last)
		}
	}
}

func ensureOnce(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, mismatch func(jetstream.StreamConfig) []string) error {
	info, err := streamInfo(ctx, js, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		info, err = createStream(ctx, js, want)
	}
	if err != nil {
		return fmt.Errorf("%w: stream %s: %w", ErrStream, quote(want.Name), err)
	}
	if diffs := mismatch(info.Config); len(diffs) > 0 {
		return fmt.Errorf("%w: stream %s: %s", ErrStreamMismatch, quote(want.Name), strings.Join(diffs, "; "))
	}
	return nil
}

func createStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s, err := js.CreateStream(rctx, want)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return streamInfo(ctx, js, want.Name) // another node won the race: check its config
	}
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// streamInfo reads the stream's info (config, created, state) from its
// leader, bounded by requestTimeout.
func streamInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	s, err := getStream(ctx, js, name)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// getStream is streamInfo with the handle that reads the stream's messages.
func getStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return js.Stream(rctx, name)
}

// errCodeReplicasUnsupported: "replicas > 1 not supported in non-clustered
// mode", a 500 that no retry mends.
const errCodeReplicasUnsupported = 10074

// errCodeNoPeers is JetStream's "no suitable peers for placement": a 400,
// and transient while a peer is offline; a placement that can never be
// met still ends New when its ctx does, with this as the last error.
const errCodeNoPeers = 10005

// transient tells whether a failed JetStream request may succeed if tried
// again: timeouts, no responders, server errors (a store still being
// removed after a delete, no leader yet) may; API errors about the request
// itself (a bad config, overlapping subjects) do not.
func transient(err error) bool {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return true
	}
	if api.ErrorCode == jetstream.JSErrCodeStreamNotFound || api.ErrorCode == errCodeNoPeers {
		return true // a peer offline (a cluster forming, a server restarting) comes back
	}
	return api.Code >= 500 && api.ErrorCode != errCodeReplicasUnsupported
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
