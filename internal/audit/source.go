package audit

import "context"

type sourceKey struct{}

// WithSource returns ctx carrying src, for code that records events
// without a Source of its own (hooks, the keyring's events).
func WithSource(ctx context.Context, src Source) context.Context {
	return context.WithValue(ctx, sourceKey{}, src)
}

// SourceFrom returns the Source ctx carries, or System.
func SourceFrom(ctx context.Context) Source {
	if src, ok := ctx.Value(sourceKey{}).(Source); ok {
		return src
	}
	return System
}
