package rules

import (
	"errors"
	"strings"
	"testing"
)

func compileSQLRule(sql string) error {
	_, err := CompileRule(0, Config{Name: "r", SQL: sql, Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "up"}}}})
	return err
}

// Functions that need an AWS service are refused when the rule is loaded,
// with the function's name, why, and what to do instead.
func TestCloudFunctionsRefused(t *testing.T) {
	cases := []struct {
		name, sql, wantMsg string
	}{
		{"aws_lambda", `SELECT aws_lambda("arn:aws:lambda:us-east-1:1:function:f", {"payload":attribute1}) as output FROM 'topic-filter'`,
			`rules[0] "r" sql: 1:8: function aws_lambda() is not available at the edge: it calls an AWS Lambda function, which the gateway cannot reach offline; do this in an AWS IoT Core rule after the message is forwarded`},
		{"get_dynamodb", `SELECT *, get_dynamodb("InServiceDevices", "deviceId", id, "arn:aws:iam::12345678910:role/getdynamo").location AS location FROM 'some/topic'`,
			"1:11: function get_dynamodb() is not available at the edge: it reads an Amazon DynamoDB table"},
		{"get_secret", `SELECT get_secret('API_KEY', 'SecretString', 'API_KEY_VALUE', 'arn:aws:iam::1:role/r') AS k FROM 'a'`,
			"1:8: function get_secret() is not available at the edge: it reads AWS Secrets Manager"},
		{"get_thing_shadow", "SELECT * from 'topic/subtopic'\nWHERE\n    get_thing_shadow(\"MyThing\",\"arn:aws:iam::123456789012:role/AllowsThingShadowAccess\").state.reported.alarm = 'ON'",
			"3:5: function get_thing_shadow() is not available at the edge"},
		{"get_registry_data", `SELECT get_registry_data('DescribeThing', 't', 'arn:aws:iam::1:role/r') AS d FROM 'a'`,
			"1:8: function get_registry_data() is not available at the edge: it reads the AWS IoT thing registry in the cloud"},
		{"machinelearning_predict", `SELECT machinelearning_predict('m', 'arn:aws:iam::1:role/r', *) AS p FROM 'a'`,
			"1:8: function machinelearning_predict() is not available at the edge: it calls Amazon Machine Learning"},
		{"accountid", `SELECT accountid() AS a FROM 'a'`,
			"1:8: function accountid() is not available at the edge: it returns the AWS account that owns the rule, and an edge rule has none"},
		{"decode-proto", `SELECT VALUE decode(*, 'proto', 'bucket', 'key.desc', 'f', 'M') FROM 'a'`,
			"1:24: decode(..., 'proto', ...) is not available at the edge: it reads the Protobuf descriptor from Amazon S3"},
		{"case-insensitive", `SELECT AWS_LAMBDA('arn', *) AS o FROM 'a'`, "function AWS_LAMBDA() is not available at the edge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := compileSQLRule(tc.sql)
			if err == nil {
				t.Fatalf("compiled %q; want it refused", tc.sql)
			}
			if !errors.Is(err, ErrCloudFunction) {
				t.Errorf("errors.Is(err, ErrCloudFunction) = false; err = %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("got %q; want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name, sql, want string
		is              error
	}{
		{"unknown function", "SELECT isString(a) AS s FROM 'a'",
			"1:8: unknown function isString(): AWS IoT SQL (2016-03-23) has no such function", ErrUnknownFunction},
		{"crc32 is not AWS", "SELECT crc32(a) AS s FROM 'a'", "unknown function crc32()", ErrUnknownFunction},
		{"no select", "FROM 'a'", "1:1: expected SELECT, found \"FROM\"", ErrSyntax},
		{"no from", "SELECT a", "1:9: expected FROM or ',' after the SELECT list, found the end of the statement", ErrSyntax},
		{"unquoted topic", "SELECT * FROM topic/#", "1:15: FROM takes a topic filter in single quotes, like FROM 'building/+/temp'", ErrSyntax},
		{"hash not last", "SELECT * FROM 'a/#/b'", `1:15: FROM topic filter "a/#/b": '#' must be a whole level and the last one`, ErrSyntax},
		{"plus in level", "SELECT * FROM 'a/b+/c'", "'+' must be a whole level", ErrSyntax},
		{"bang equals", "SELECT * FROM 'a' WHERE x != 1", "1:27: '!=' is not AWS IoT SQL: write not-equal as <>", ErrSyntax},
		{"comment", "SELECT * FROM 'a' -- hot", "1:19: comments are not supported in AWS IoT SQL", ErrSyntax},
		{"stray character", "SELECT a FROM 'a' WHERE b = #", "1:29: unexpected \"#\" (not part of AWS IoT SQL) where an expression should be", ErrSyntax},
		{"unclosed string", "SELECT * FROM 'a", "1:15: string starting here is not closed: add the closing '", ErrSyntax},
		{"second line", "SELECT temp\nFROM 'a'\nWHERE temp >", "3:13: the statement ends where an expression should be", ErrSyntax},
		{"arity", "SELECT abs(1, 2) AS a FROM 'a'", "1:8: abs() takes 1 arguments, found 2", ErrSyntax},
		{"arity range", "SELECT substring('a') AS a FROM 'a'", "substring() takes 2 to 3 arguments, found 1", ErrSyntax},
		{"scheme not literal", "SELECT encode(a, s) AS e FROM 'a'", "1:18: encode(): the scheme must be a literal string", ErrSyntax},
		{"scheme unknown", "SELECT encode(a, 'hex') AS e FROM 'a'", `encode(): unknown scheme "hex"; the gateway supports 'base64'`, ErrSyntax},
		{"java regex", `SELECT regexp_matches(a, "(?=x)y") AS m FROM 'a'`, "1:26: regexp_matches(): the regular expression \"(?=x)y\" does not compile here", ErrSyntax},
		{"time pattern letter", `SELECT parse_time("yyyy QQ", 0) AS t FROM 'a'`, `pattern letter 'Q' is not supported`, ErrSyntax},
		{"zone", `SELECT parse_time("yyyy", 0, 'Mars/Olympus') AS t FROM 'a'`, `unknown time zone "Mars/Olympus"`, ErrSyntax},
		{"dotted alias", "SELECT foo.bar AS bar.baz FROM 'a'", "1:22: AS takes one name, not a path", ErrSyntax},
		{"needs alias", "SELECT upper(color) FROM 'a'", "1:8: this expression has no output name: add AS name after it", ErrSyntax},
		{"duplicate key", "SELECT a, b AS a FROM 'a'", `1:11: the output key "a" appears twice`, ErrSyntax},
		{"value two items", "SELECT VALUE a, b FROM 'a'", "SELECT VALUE takes exactly one expression, found 2", ErrSyntax},
		{"trailing", "SELECT a FROM 'a' WHERE b = 1 c", `1:31: unexpected "c" after the statement`, ErrSyntax},
		{"cast type", "SELECT cast(a AS Float) AS f FROM 'a'", `1:18: cast to "Float": the types are String`, ErrSyntax},
		{"case without when", "SELECT CASE a END AS c FROM 'a'", "CASE needs at least one WHEN ... THEN ...", ErrSyntax},
		{"hyphen key", "SELECT * FROM 'a' WHERE mydata.item2.0.x = 1", `1:38: expected a field name after '.', found "0"; for keys that are numbers or contain '-', use get(obj, "key")`, ErrSyntax},
		{"object key", "SELECT {a: 1} AS o FROM 'a'", "1:9: object keys are quoted strings, like {'name': value}", ErrSyntax},
		{"variable not set", "SELECT @x AS x FROM 'a'", "1:8: @x is not set: define it with SET @x = ... before SELECT", ErrSyntax},
		{"variable set twice", "SET @x = 1, @x = 2 SELECT @x AS x FROM 'a'", "1:13: @x is set twice: variables are assigned once", ErrSyntax},
		{"variable used before its SET", "SET @a = @b, @b = 1 SELECT @a AS a FROM 'a'", "1:10: @b is not set", ErrSyntax},
		{"two SETs", "SET @a = 1 SET @b = 2 SELECT @a AS a FROM 'a'", "1:12: SET is allowed once, before the top-level SELECT", ErrSyntax},
		{"set without variable", "SET a = 1 SELECT a FROM 'a'", "1:5: expected a variable like @name after SET", ErrSyntax},
		{"star in expression", "SELECT * + 1 AS x FROM 'a'", "1:8: '*' stands for the whole payload only as a SELECT item or a function argument", ErrSyntax},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := compileSQLRule(tc.sql)
			if err == nil {
				t.Fatalf("compiled %q; want an error", tc.sql)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q; want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tc.is, err)
			}
			var se *SQLError
			if !errors.As(err, &se) || se.Pos.Line < 1 || se.Pos.Col < 1 {
				t.Errorf("err = %v; want a *SQLError with a position", err)
			}
		})
	}
}

func TestRuleConfigErrors(t *testing.T) {
	ok := []ActionConfig{{Forward: &ForwardConfig{Route: "up"}}}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad name", Config{Name: "hot rooms", SQL: "SELECT * FROM 'a'", Actions: ok},
			`rules[0] "hot rooms" name: "hot rooms" is not a rule name: use 1 to 128 letters, digits and _`},
		{"version", Config{Name: "r", SQL: "SELECT * FROM 'a'", SQLVersion: "2015-10-08", Actions: ok},
			`rules[0] "r" sql_version: "2015-10-08" is not supported: the gateway implements AWS IoT SQL version 2016-03-23 only`},
		{"empty sql", Config{Name: "r", Actions: ok}, `rules[0] "r" sql: empty`},
		{"no actions", Config{Name: "r", SQL: "SELECT * FROM 'a'"}, `rules[0] "r" actions: a rule needs at least one action`},
		{"empty action", Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{}}}, `rules[0] "r" actions[0]: empty action: set republish or forward`},
		{"both", Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "u"}, Republish: &RepublishConfig{Topic: "t"}}}},
			"set one of republish or forward per action, not both"},
		{"qos 2", Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{Republish: &RepublishConfig{Topic: "t", QoS: 2}}}},
			`rules[0] "r" actions[0].republish.qos: 2: the republish action takes QoS 0 or 1`},
		{"wildcard topic", Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{Republish: &RepublishConfig{Topic: "a/+"}}}},
			`actions[0].republish.topic: "a/+" cannot be published to`},
		{"template unclosed", Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{Republish: &RepublishConfig{Topic: "a/${topic(2)"}}}},
			"actions[0].republish.topic: ${ at offset 2 is not closed with }"},
		{"template bad expr", Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{Republish: &RepublishConfig{Topic: "a/${aws_lambda('x', *)}"}}}},
			"actions[0].republish.topic: 1:1: in template ${aws_lambda('x', *)} at offset 2: function aws_lambda() is not available at the edge"},
		{"no route", Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []ActionConfig{{Forward: &ForwardConfig{}}}},
			"actions[0].forward.route: empty: name the bridge route"},
		{"error action", Config{Name: "r", SQL: "SELECT * FROM 'a'", Actions: ok, ErrorAction: &ActionConfig{Republish: &RepublishConfig{Topic: ""}}},
			"error_action.republish.topic: empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompileRule(0, tc.cfg)
			if err == nil {
				t.Fatalf("compiled; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q; want it to contain %q", err, tc.want)
			}
			var re *RuleError
			if !errors.As(err, &re) {
				t.Errorf("err = %v; want a *RuleError", err)
			}
		})
	}
}

// One bad rule is reported with its index; the others still compile.
func TestCompileSetReportsEveryBadRule(t *testing.T) {
	ok := []ActionConfig{{Forward: &ForwardConfig{Route: "up"}}}
	set, err := Compile([]Config{
		{Name: "good", SQL: "SELECT * FROM 'a'", Actions: ok},
		{Name: "lambda", SQL: "SELECT aws_lambda('x', *) AS o FROM 'a'", Actions: ok},
		{Name: "syntax", SQL: "SELECT FROM 'a'", Actions: ok},
		{Name: "good", SQL: "SELECT * FROM 'b'", Actions: ok},
		{Name: "good2", SQL: "SELECT * FROM 'c'", Actions: ok},
	})
	if err == nil {
		t.Fatal("Compile: got nil error; want three")
	}
	for _, want := range []string{
		`rules[1] "lambda" sql: 1:8: function aws_lambda()`,
		`rules[2] "syntax" sql: 1:8: unexpected keyword FROM where an expression should be`,
		`rules[3] "good" name: the name is already used by rules[0]`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q; want it to contain %q", err, want)
		}
	}
	var names []string
	for _, r := range set.Rules() {
		names = append(names, r.Name())
	}
	if got := strings.Join(names, ","); got != "good,good2" {
		t.Errorf("compiled rules %s; want good,good2", got)
	}
}
