// Package wstest is the bridge's WebSocket test kit, shared by its tests
// (package bridge and bridge_test) so that each is written once:
//
//   - Server serves an http.Handler on 127.0.0.1 or in memory (net.Pipe
//     connections, usable inside a testing/synctest bubble), and keeps the
//     server's side of every connection it accepted;
//   - Conn is that server side: it records the WebSocket frames the server
//     writes (close codes included), and can stall or slow the server's
//     writes, or cut the connection like a failed network;
//   - Server.Dial connects a gorilla/websocket client, over the same
//     transport, with small socket buffers when asked;
//   - WaitFor polls a condition that no signal announces (a counter kept
//     by another goroutine). Inside a bubble, use synctest.Wait instead.
//
// Everything here runs on the caller's goroutines or on goroutines that
// Server.Close and Conn.Close wait for, so goleak and synctest see nothing
// left behind.
package wstest
