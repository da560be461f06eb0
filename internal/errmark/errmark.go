// Package errmark marks an error with a sentinel of its kind without
// changing its message: the domain packages mark errors (unreachable,
// invalid input, interrupted), and the command layer maps kinds to exit
// codes with errors.Is.
package errmark

// With returns err marked with kind: its message is err's, and errors.Is
// and errors.As see both err's chain and kind. A nil err stays nil.
func With(kind, err error) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, kind: kind}
}

type marked struct{ err, kind error }

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }
