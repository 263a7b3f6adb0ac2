package bridge

import (
	"errors"
	"fmt"
	"strings"
)

// publishHookOf returns the WithPublishHook function stored in the config
// (nil: none). The Option type is not generic, so the hook is stored as
// any: it panics if the hook's data type is not T, the bus's.
func publishHookOf[T any](h any) func(any, string, T) (T, error) {
	if h == nil {
		return nil
	}
	fn, ok := h.(func(any, string, T) (T, error))
	if !ok {
		panic(fmt.Sprintf("bridge.New: WithPublishHook got a %T, but the bus carries %s: "+
			"want func(identity any, topic string, data %[2]s) (%[2]s, error)", h, typeName[T]()))
	}
	return fn
}

// typeName names T without reflection: %T of a nil *T, less the star (a
// zero T of an interface type would print <nil>).
func typeName[T any]() string {
	return strings.TrimPrefix(fmt.Sprintf("%T", (*T)(nil)), "*")
}

// hookRefusal is a publish the hook refused: code forbidden, its text.
type hookRefusal struct{ err error }

func (e *hookRefusal) Error() string { return e.err.Error() }
func (e *hookRefusal) Unwrap() error { return e.err }

// errHookPanicked is a publish whose hook panicked: code internal.
var errHookPanicked = errors.New("publish hook panicked")

// runHook passes a client publish through the hook: the data to publish,
// or why not (a *hookRefusal, or errHookPanicked wrapped with the value).
func (br *Bridge[T]) runHook(ident any, topic string, v T) (out T, err error) {
	if br.hook == nil {
		return v, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errHookPanicked, r)
		}
	}()
	out, err = br.hook(ident, topic, v)
	if err != nil {
		return out, &hookRefusal{err}
	}
	return out, nil
}
