package natsbus

import "encoding/json"

// A Codec turns events into message payloads and back. Every node on a
// stream must use the same codec and the same T. It has the same shape as
// bridge.Codec, so one value can serve both.
type Codec interface {
	Marshal(v any) ([]byte, error)      // an event's data to a message payload
	Unmarshal(data []byte, v any) error // a payload back into a *T
}

// JSON is the default Codec: encoding/json.
type JSON struct{}

// Marshal encodes v with encoding/json.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes data into v with encoding/json.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
