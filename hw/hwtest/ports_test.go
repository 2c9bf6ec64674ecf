package hwtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The child half of TestFreePortsAcrossProcesses: reserve ports, print them,
// hold them until stdin closes.
func TestMain(m *testing.M) {
	if n := os.Getenv("HWTEST_PORTS_CHILD"); n != "" {
		count, _ := strconv.Atoi(n)
		narrow(os.Getenv("HWTEST_PORTS_SPAN"))
		var out []string
		for range count {
			p, err := reservePorts(1)
			if err != nil {
				os.Stderr.WriteString(err.Error() + "\n")
				os.Exit(2)
			}
			out = append(out, strconv.Itoa(p))
		}
		os.Stdout.WriteString(strings.Join(out, " ") + "\n")
		_, _ = os.Stdin.Read(make([]byte, 1))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// narrow makes reservePorts look only at "lo-hi" (a stretch of the real span),
// so that two processes collide on every pick unless they coordinate.
func narrow(lohi string) {
	lo, _ := strconv.Atoi(strings.Split(lohi, "-")[0])
	hi, _ := strconv.Atoi(strings.Split(lohi, "-")[1])
	span = func() (int, int, error) { return lo, hi, nil }
}

// stretch is 450 ports of the real span, from a random place, none of them
// reserved by this process already (tests run with -count=N reserve more).
func stretch(t *testing.T) (lo, hi int) {
	first, last, err := portSpan()
	if err != nil {
		t.Fatal(err)
	}
	ports.Lock()
	defer ports.Unlock()
next:
	for range 100 {
		lo = first + rand.IntN(last-first-450)
		for p := range ports.held {
			if p >= lo && p < lo+450 {
				continue next
			}
		}
		return lo, lo + 450
	}
	t.Fatalf("no stretch of 450 ports in %d-%d free of this process's reservations", first, last)
	return 0, 0
}

func TestFreePortsAcrossProcesses(t *testing.T) {
	lo, hi := stretch(t)
	lohi := fmt.Sprintf("%d-%d", lo, hi)
	narrow(lohi)
	t.Cleanup(func() { span = portSpan })
	mine := map[int]bool{}
	for range 200 {
		p := FreePorts(t, 1)
		if p < lo || p >= hi {
			t.Fatalf("port %d outside [%d, %d), the span below the ephemeral range", p, lo, hi)
		}
		if mine[p] {
			t.Fatalf("port %d handed out twice in one process", p)
		}
		mine[p] = true
	}

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "HWTEST_PORTS_CHILD=200", "HWTEST_PORTS_SPAN="+lohi)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = child.Wait() }()
	buf := make([]byte, 8192)
	var line string
	for !strings.HasSuffix(line, "\n") {
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("reading the child's ports: %v (got %q)", err, line)
		}
		line += string(buf[:n])
	}
	theirs := strings.Fields(line)
	if len(theirs) != 200 {
		t.Fatalf("child reserved %d ports, want 200: %q", len(theirs), line)
	}
	for _, s := range theirs {
		p, _ := strconv.Atoi(s)
		if mine[p] {
			t.Fatalf("port %d reserved by both processes", p)
		}
	}
	// While the child holds its ports, this process gets none of them either:
	// what is left of the stretch (at most 50 ports, some busy elsewhere).
	for range 40 {
		p := FreePorts(t, 1)
		for _, s := range theirs {
			if s == strconv.Itoa(p) {
				t.Fatalf("port %d, held by the child, handed out here", p)
			}
		}
	}
}

func TestFreePortsSkipsBusyPort(t *testing.T) {
	lo, hi := stretch(t)
	narrow(fmt.Sprintf("%d-%d", lo, hi))
	t.Cleanup(func() { span = portSpan })
	// Occupy every third port of the stretch with plain listeners (not
	// reserved through FreePorts): pairs must not start on or cover one.
	busy := map[int]bool{}
	for p := lo; p < hi; p += 3 {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		defer l.Close()
		busy[p] = true
	}
	pairs := 0
	for p := lo; p+1 < hi; p++ {
		if !busy[p] && !busy[p+1] {
			pairs++
		}
	}
	if pairs == 0 {
		t.Fatalf("no free pair left in %d-%d to hand out (too many ports busy elsewhere); run again", lo, hi)
	}
	for range 5 {
		p := FreePorts(t, 2)
		if busy[p] || busy[p+1] {
			t.Fatalf("pair %d,%d covers a port another listener holds", p, p+1)
		}
		for q := p; q < p+2; q++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(q)))
			if err != nil {
				t.Fatalf("port %d handed out but not bindable: %v", q, err)
			}
			l.Close()
		}
	}
}
