package bridge

import "github.com/olahol/melody"

// The writer. A session writes its frames itself, on a goroutine of its own
// that runs only while there is something to write: started by whoever
// queues into an idle session (startLocked), it takes everything queued by
// the time it runs into one frame (claimLocked), writes it, and goes on
// until the queue is empty, then ends. So a connection with nothing to send
// has no writer and no stack for it; events that arrive while the writer
// waits for the CPU or the socket leave together; and nothing the bridge
// sends goes through melody's write loop, whose channel would seal each
// frame as it was handed over (melody's loop is left its pings and the
// close frame).
//
// A session that ends with a close frame of the server's (dieLocked) starts
// the writer, or lets the one that runs take it next: the close frame goes
// after the frame being written, if any, and nothing after it. It goes
// through melody (see writeClose), which then closes the socket, ending the
// read loop. A write that fails closes the socket too. The writer is waited
// for by disconnected, on the read loop, which the bridge's Close waits
// for.

// zeroHead is the headroom a frame is built behind (see newFrame and
// frameHead).
var zeroHead [headroom]byte

// startLocked starts the writer unless one runs or there is nothing to
// write. The caller starts its goroutine (act) once mu is released.
func (s *session[T]) startLocked() step {
	switch {
	case s.writing:
		return step{}
	case s.hello != nil:
	case s.dead && s.closing == noEnd, !s.dead && s.out.empty():
		return step{}
	}
	s.writing = true
	s.writer.Add(1)
	return step{start: true}
}

// flush is the writer: it writes until nothing is left, or until the close
// frame or a failed write ends the connection.
func (s *session[T]) flush() {
	defer s.writer.Done()
	for {
		s.mu.Lock()
		frame, events, end := s.takeLocked()
		s.mu.Unlock()
		switch {
		case end != noEnd:
			s.writeClose(end)
			return
		case frame == nil && events == 0:
			return
		case frame == nil:
			frame = s.buildEvents()
		}
		err := s.wire.writeFrame(frameHead(frame, opText), s.br.cfg.writeTimeout)
		putBuf(frame)
		if err != nil { // the connection is broken, or the client took nothing for the write timeout
			s.failed(err)
			s.drop()
			return
		}
		s.br.stats.framesOut.Add(1)
		s.br.stats.eventsOut.Add(uint64(events))
	}
}

// takeLocked takes what the writer writes next: the hello if not written
// yet, the close frame once the session is dead (and nothing else: its
// queue is gone), or the next frame's worth of the queue. With none, the
// writer stops (writing is cleared, so the next queuing starts one again).
func (s *session[T]) takeLocked() (frame []byte, events int, end ending) {
	if s.hello != nil {
		frame, s.hello = s.hello, nil
		return frame, 0, noEnd
	}
	if s.dead {
		end, s.closing = s.closing, noEnd
		if end == noEnd {
			s.writing = false
		}
		return nil, 0, end
	}
	frame, events = s.claimLocked()
	if frame == nil && events == 0 {
		s.writing = false
	}
	return frame, events, noEnd
}

// writeClose has melody send e's close frame and close the socket: through
// gorilla, which then knows that the close is sent and does not answer the
// client's own with a second one. The writer has written its last frame:
// nothing follows the close frame. closeReason is read without mu: the
// session is dead, and nothing changes it any more.
func (s *session[T]) writeClose(e ending) {
	_ = s.ms.CloseWithMsg(melody.FormatCloseMessage(e.code(), s.closeReason))
}
