package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
)

// Under systemd, stderr is a stream to journald, which reads an sd-daemon
// priority prefix ("<3>" ... "<7>", sd-daemon(3)) at the start of each line
// and stamps the time itself. onJournal reports whether w is that stream:
// JOURNAL_STREAM holds "DEVICE:INODE" of it (systemd.exec(5)), compared with
// w's, so a child whose stderr was redirected does not write prefixes into
// a file.
func onJournal(w io.Writer) bool {
	js := os.Getenv("JOURNAL_STREAM")
	f, ok := w.(*os.File)
	if js == "" || !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return js == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// journalHandlerOptions drops slog's time attribute: journald has it.
func journalHandlerOptions(o *slog.HandlerOptions) *slog.HandlerOptions {
	j := *o
	j.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return &j
}

// priorityWriter prefixes each record (slog's handlers write one record per
// Write) with the sd-daemon priority of its level, read from the record's
// level field, which leads the line once the time is dropped.
type priorityWriter struct{ w io.Writer }

var levelPriorities = []struct {
	text, json string
	prio       string
}{
	{"level=ERROR", `{"level":"ERROR"`, "<3>"},
	{"level=WARN", `{"level":"WARN"`, "<4>"},
	{"level=INFO", `{"level":"INFO"`, "<6>"},
	{"level=DEBUG", `{"level":"DEBUG"`, "<7>"},
}

func (p priorityWriter) Write(b []byte) (int, error) {
	prio := "<6>"
	for _, lp := range levelPriorities {
		if bytes.HasPrefix(b, []byte(lp.text)) || bytes.HasPrefix(b, []byte(lp.json)) {
			prio = lp.prio
			break
		}
	}
	if _, err := p.w.Write(append([]byte(prio), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}
