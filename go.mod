module github.com/whalesong/bus

go 1.25.0

require (
	github.com/google/uuid v1.6.0
	github.com/gorilla/websocket v1.5.3
	github.com/olahol/melody v1.1.4
	go.uber.org/goleak v1.3.0
	golang.org/x/time v0.15.0
)
