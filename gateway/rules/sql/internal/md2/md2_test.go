package md2

import (
	"encoding/hex"
	"strings"
	"testing"
)

// TestRFC1319: the test suite of RFC 1319 appendix A.5.
func TestRFC1319(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "8350e5a3e24c153df2275c9f80692773",
		"a":                          "32ec01ec4a6dac72c0ab96fb34c0b5d1",
		"abc":                        "da853b0d3f88d99b30283a69e6ded6bb",
		"message digest":             "ab4f496bfb2a530b219ff33031fe06b0",
		"abcdefghijklmnopqrstuvwxyz": "4e8ddff3650292ab5a4108c3aa47940b",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789": "da33def2a42df13975352846c30338cd",
		strings.Repeat("1234567890", 8):                                  "d5976f79d83d3a0dc9806c3c66f3efd8",
	} {
		h := New()
		h.Write([]byte(in))
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("MD2(%q) = %s; want %s", in, got, want)
		}
	}
}
