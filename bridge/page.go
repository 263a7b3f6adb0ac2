package bridge

import (
	"strconv"

	bus "github.com/whalesong/bus"
)

// pageTries bounds how often a history request reads again when the epoch
// changed under it (a shared log recreated meanwhile).
const pageTries = 3

// history answers a history request with a page of older retained events
// (PROTOCOL.md, "history"): authorized like a subscribe of the pattern. On
// a bus served by a shared log that is behind the before asked for, it
// waits first, as a resume does, so that the page has no hole.
func (s *session[T]) history(f *clientFrame) *protoError {
	br := s.br
	if err := bus.CheckPattern(f.Pattern); err != nil {
		return newProtoError(codeInvalidPattern, f, "%v", err)
	}
	if pe := br.cfg.authorizeFrame(s.ident, Subscribe, f.Pattern, f); pe != nil {
		return pe
	}
	if f.Before > 1 {
		if done, pe := s.awaitFor(f, "", f.Before-1); done {
			return pe
		}
	}
	b := br.bus
	for range pageTries {
		epoch := b.Epoch()
		evs, more, err := b.Page(f.Pattern, f.Before, f.Limit)
		if err != nil {
			return busError(f, err)
		}
		if b.Epoch() == epoch { // the page belongs to that epoch
			s.send(br.appendPage(newFrame(), f.ID, epoch, more, evs))
			return nil
		}
	}
	return newProtoError(codeUnavailable, f, "history of %q: the sequence space keeps changing; retry later", clip(f.Pattern))
}

// appendPage appends the page frame answering history request id: its
// entries are those of an events frame without subs.
func (br *Bridge[T]) appendPage(b []byte, id, epoch string, more bool, evs []bus.Event[T]) []byte {
	b = append(b, `{"op":"page","id":`...)
	b = appendString(b, id)
	b = append(b, `,"epoch":`...)
	b = appendString(b, epoch)
	b = append(b, `,"more":`...)
	b = strconv.AppendBool(b, more)
	b = append(b, `,"events":[`...)
	for i, ev := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = br.appendTail(b, ev)
	}
	return append(b, "]}"...)
}
