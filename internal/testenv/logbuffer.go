package testenv

import (
	"bytes"
	"sync"
)

// LogBuffer collects what a logger or a child process writes while a test
// reads it: an io.Writer safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Bytes returns a copy of everything written so far.
func (l *LogBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// String returns everything written so far.
func (l *LogBuffer) String() string { return string(l.Bytes()) }
