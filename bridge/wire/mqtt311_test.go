package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

func TestAppend311Connect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		user     string
		pass     []byte
		userSet  bool
		passSet  bool
		wantFlag byte
	}{
		{"client id only", "", nil, false, false, 0x00},
		{"user and password", "u", []byte("pw"), true, true, 0xc0},
		{"user only", "u", nil, true, false, 0x80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := AppendConnect311(nil, "gw", tc.user, tc.pass, tc.userSet, tc.passSet, 30)
			want := []byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 4, tc.wantFlag, 0, 30, 0, 2, 'g', 'w'}
			if tc.userSet {
				want = append(want, 0, byte(len(tc.user)))
				want = append(want, tc.user...)
			}
			if tc.passSet {
				want = append(want, 0, byte(len(tc.pass)))
				want = append(want, tc.pass...)
			}
			want = append([]byte{0x10, byte(len(want))}, want...)
			if !bytes.Equal(raw, want) {
				t.Errorf("got % x; want % x", raw, want)
			}
		})
	}
}

func TestAppend311SubscribeUnsubscribe(t *testing.T) {
	sub := AppendSubscribe311(nil, 65535, []packets.SubOptions{{Topic: "a/#", QoS: 1, NoLocal: true, RetainHandling: 1}, {Topic: "b", QoS: 0}})
	want := []byte{0x82, 12, 0xff, 0xff, 0, 3, 'a', '/', '#', 1, 0, 1, 'b', 0}
	if !bytes.Equal(sub, want) {
		t.Errorf("SUBSCRIBE: got % x; want % x (no MQTT 5 option bits)", sub, want)
	}
	un := AppendUnsubscribe311(nil, 7, []string{"a/#"})
	want = []byte{0xa2, 7, 0, 7, 0, 3, 'a', '/', '#'}
	if !bytes.Equal(un, want) {
		t.Errorf("UNSUBSCRIBE: got % x; want % x", un, want)
	}
}

func TestRead311(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     []byte
		check   func(t *testing.T, p Packet311)
		wantErr error
	}{
		{"CONNACK session present", []byte{0x20, 2, 1, 0}, func(t *testing.T, p Packet311) {
			if sp, code, err := p.Connack(); !sp || code != 0 || err != nil {
				t.Errorf("got %v %d %v; want true 0 nil", sp, code, err)
			}
		}, nil},
		{"CONNACK refused 4", []byte{0x20, 2, 0, 4}, func(t *testing.T, p Packet311) {
			if _, code, err := p.Connack(); code != 4 || err != nil {
				t.Errorf("got %d %v; want 4 nil", code, err)
			}
		}, nil},
		{"CONNACK with reserved flags", []byte{0x20, 2, 2, 0}, func(t *testing.T, p Packet311) {
			if _, _, err := p.Connack(); !errors.Is(err, ErrMalformed311) {
				t.Errorf("got %v; want malformed", err)
			}
		}, nil},
		{"PUBLISH QoS 1 retained", []byte{0x33, 8, 0, 1, 't', 0, 9, 'o', 'n', '!'}, func(t *testing.T, p Packet311) {
			pub, err := p.Publish()
			if err != nil || pub.Topic != "t" || pub.QoS != 1 || !pub.Retain || pub.PacketID != 9 || string(pub.Payload) != "on!" {
				t.Errorf("got %+v %v; want t, qos 1, retain, id 9, on!", pub, err)
			}
		}, nil},
		{"PUBLISH QoS 0", []byte{0x30, 5, 0, 1, 't', 'h', 'i'}, func(t *testing.T, p Packet311) {
			pub, err := p.Publish()
			if err != nil || pub.QoS != 0 || pub.PacketID != 0 || string(pub.Payload) != "hi" {
				t.Errorf("got %+v %v", pub, err)
			}
		}, nil},
		{"PUBLISH id 0", []byte{0x32, 5, 0, 1, 't', 0, 0}, func(t *testing.T, p Packet311) {
			if _, err := p.Publish(); !errors.Is(err, ErrMalformed311) {
				t.Errorf("got %v; want malformed", err)
			}
		}, nil},
		{"PUBLISH topic past the end", []byte{0x30, 3, 0, 9, 't'}, func(t *testing.T, p Packet311) {
			if _, err := p.Publish(); !errors.Is(err, ErrMalformed311) {
				t.Errorf("got %v; want malformed", err)
			}
		}, nil},
		{"SUBACK", []byte{0x90, 4, 0xff, 0xff, 1, 0x80}, func(t *testing.T, p Packet311) {
			id, codes, err := p.AckID()
			if err != nil || id != 65535 || !bytes.Equal(codes, []byte{1, 0x80}) {
				t.Errorf("got %d % x %v", id, codes, err)
			}
		}, nil},
		{"five length bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, nil, ErrMalformed311},
		{"over the read limit", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, nil, ErrMalformed311},
		{"truncated body", []byte{0x30, 5, 0, 1}, nil, io.ErrUnexpectedEOF},
		{"truncated length", []byte{0x30, 0x80}, nil, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Read311(bufio.NewReader(bytes.NewReader(tc.raw)))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v; want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

// FuzzRead311 feeds the 3.1.1 reader what an upstream could send: it must
// never panic, never read a body longer than announced, and decode every
// PUBLISH it accepts into a topic and payload inside the packet.
func FuzzRead311(f *testing.F) {
	for _, seed := range [][]byte{
		{0x20, 2, 1, 0},
		{0x33, 8, 0, 1, 't', 0, 9, 'o', 'n', '!'},
		{0x90, 4, 0xff, 0xff, 1, 0x80},
		{0xb0, 2, 0, 1},
		{0xd0, 0},
		{0x30, 0xff, 0xff, 0xff, 0x7f},
		{0x32, 5, 0, 1, 't', 0, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := Read311(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		if len(p.Body) > len(raw) {
			t.Fatalf("body of %d bytes from %d input bytes", len(p.Body), len(raw))
		}
		switch p.Type {
		case packets.PUBLISH:
			if pub, err := p.Publish(); err == nil && len(pub.Topic)+len(pub.Payload) > len(p.Body) {
				t.Fatalf("topic %d + payload %d bytes from a %d-byte body", len(pub.Topic), len(pub.Payload), len(p.Body))
			}
		case packets.CONNACK:
			_, _, _ = p.Connack()
		default:
			_, _, _ = p.AckID()
		}
	})
}
