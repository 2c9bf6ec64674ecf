package evalcmd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRuleTest: `edgegw rule test` evaluates one statement on one message
// and shows the output, or why there is none; exit 0 fires, 1 does not, 2
// error. Statements and results follow the AWS IoT SQL reference (SELECT
// clause, WHERE clause and the topic() and clientid() functions).
func TestRuleTest(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"reshape", []string{"--sql", "SELECT temp, topic(2) AS room FROM 'building/+/temp' WHERE temp > 30",
			"--topic", "building/hall/temp", "--payload", `{"temp": 31.5, "hum": 40}`}, 0,
			[]string{"topic building/hall/temp matches the FROM filter", `OUTPUT {"temp":31.5,"room":"hall"}`}, ""},
		{"where false", []string{"--sql", "SELECT * FROM 'building/+/temp' WHERE temp > 30",
			"--topic", "building/hall/temp", "--payload", `{"temp": 20}`}, 1,
			[]string{"WHERE is not true: no output"}, ""},
		{"topic does not match", []string{"--sql", "SELECT * FROM 'building/+/temp'",
			"--topic", "garden/temp", "--payload", `{"temp": 20}`}, 1,
			[]string{"topic garden/temp does NOT match the FROM filter", `OUTPUT {"temp": 20}`}, ""},
		{"client id", []string{"--sql", "SELECT clientid() AS who FROM '#'", "--topic", "a", "--payload", "{}", "--clientid", "sensor-1"}, 0,
			[]string{`OUTPUT {"who":"sensor-1"}`}, ""},
		{"syntax error with position", []string{"--sql", "SELECT temp FROM 'a' WHERE temp >", "--topic", "a"}, 2, nil,
			"compiling the SQL: 1:"},
		{"cloud function refused", []string{"--sql", "SELECT aws_lambda('arn:aws:lambda:us-east-1:1:function:f', *) AS r FROM 'a'", "--topic", "a"}, 2, nil,
			"aws_lambda() is not available at the edge"},
		{"missing sql", []string{"--topic", "a"}, 2, nil, "--sql is required"},
		{"missing topic", []string{"--sql", "SELECT * FROM 'a'"}, 2, nil, "--topic is required"},
		{"topic with wildcard", []string{"--sql", "SELECT * FROM 'a'", "--topic", "a/#"}, 2, nil, "--topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"rule", "test"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d; want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}

// TestRuleTestJSON: -o json says what the text form says, with its exit
// status.
func TestRuleTestJSON(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string // the document, compacted
	}{
		{"fires", []string{"--sql", "SELECT temp, topic(2) AS room FROM 'building/+/temp' WHERE temp > 30",
			"--topic", "building/hall/temp", "--payload", `{"temp": 31.5}`}, 0,
			`{"fires":true,"topic_matches":true,"where_held":true,"output":"eyJ0ZW1wIjozMS41LCJyb29tIjoiaGFsbCJ9","output_json":{"temp":31.5,"room":"hall"}}`},
		{"where false", []string{"--sql", "SELECT * FROM 'building/+/temp' WHERE temp > 30",
			"--topic", "building/hall/temp", "--payload", `{"temp": 20}`}, 1,
			`{"fires":false,"topic_matches":true,"where_held":false}`},
		{"topic does not match", []string{"--sql", "SELECT * FROM 'building/+/temp'", "--topic", "garden/temp", "--payload", "hello"}, 1,
			`{"fires":false,"topic_matches":false,"where_held":true,"output":"aGVsbG8="}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"rule", "test", "-o", "json"}, tt.args...)...)
			if code != tt.code || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want %d and none\n%s", code, stderr, tt.code, stdout)
			}
			var b bytes.Buffer
			if err := json.Compact(&b, []byte(stdout)); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, stdout)
			}
			if b.String() != tt.want {
				t.Errorf("got  %s\nwant %s", b.String(), tt.want)
			}
		})
	}
}
