package hwtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Free loopback ports for the servers a test starts (swtpm, Mosquitto,
// `edgegw run`), which bind a port the test chose for them.
//
// Asking the kernel for one (listen on :0, close, hand the number over) races:
// the kernel gives out the same ephemeral range for every connect(), so any
// outgoing connection on the machine (go test runs packages as parallel
// processes, each dialling loopback servers all the time) can take the port
// between the close and the server's bind. One clean-clone `make test` failed
// that way ("bind: address already in use"). So the ports here come from
// below the kernel's ephemeral range (net.ipv4.ip_local_port_range), where the
// kernel never picks one by itself, and each is reserved across test processes
// by an abstract unix socket named after it, held until the process exits (the
// kernel releases it even on SIGKILL; no file is left behind). A port is
// handed out only if it is free on 127.0.0.1 when reserved.

const portFloor = 10000 // below this, well-known services are more likely

var ports struct {
	sync.Mutex
	held map[int]net.Listener // reserved by this process, never handed out twice
}

// FreePorts reserves n consecutive free ports on 127.0.0.1 for this test
// process and returns the first. It fails t if none are left.
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	p, err := reservePorts(n)
	if err != nil {
		t.Fatalf("finding %d free loopback port(s): %v", n, err)
	}
	return p
}

// FreeAddr is FreePorts(t, 1) as "127.0.0.1:port".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePorts(t, 1)))
}

// span is where reservePorts looks: portSpan, narrowed by this package's tests.
var span = portSpan

func reservePorts(n int) (int, error) {
	lo, hi, err := span()
	if err != nil {
		return 0, err
	}
	ports.Lock()
	defer ports.Unlock()
	if ports.held == nil {
		ports.held = map[int]net.Listener{}
	}
	span := hi - lo - n + 1
	start := rand.IntN(span)
	for i := 0; i < span; i++ {
		if p := lo + (start+i)%span; tryReserve(p, n) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("all of ports %d-%d are taken or reserved by other test processes", lo, hi-1)
}

// portSpan is [lo, hi): the ports below the kernel's ephemeral range, from
// portFloor.
func portSpan() (lo, hi int, err error) {
	const file = "/proc/sys/net/ipv4/ip_local_port_range"
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the kernel's ephemeral port range: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%s holds %q, not two numbers", file, b)
	}
	first, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, 0, fmt.Errorf("%s holds %q: %w", file, b, err)
	}
	if first-portFloor < 1000 {
		return 0, 0, fmt.Errorf("%s starts at %d, leaving fewer than 1000 ports above %d for test servers: raise it (sysctl -w net.ipv4.ip_local_port_range=\"32768 60999\")", file, first, portFloor)
	}
	return portFloor, first, nil
}

// tryReserve reserves p..p+n-1 if none is reserved (here or by another test
// process) and each is free on 127.0.0.1 now. Called with ports held.
func tryReserve(p, n int) bool {
	var got []net.Listener
	release := func() {
		for _, l := range got {
			l.Close()
		}
	}
	for q := p; q < p+n; q++ {
		if _, mine := ports.held[q]; mine {
			release()
			return false
		}
		l, err := net.Listen("unix", "@edgegw-test-port-"+strconv.Itoa(q))
		if err != nil { // another test process has it
			release()
			return false
		}
		got = append(got, l)
		tcp, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(q)))
		if err != nil { // something else listens there
			release()
			return false
		}
		tcp.Close()
	}
	for i, l := range got {
		ports.held[p+i] = l
	}
	return true
}
