package rules

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The corpus: SQL statements with an input message and the output AWS IoT
// documents for them, each taken from (or, marked "derived", following strictly
// from) the page of the AWS IoT SQL reference named in its group. Where a page's
// own example contradicts its table or arithmetic, the case says so and follows
// the table.

const (
	pageReference = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-reference.html"
	pageSelect    = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-select.html"
	pageFrom      = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-from.html"
	pageWhere     = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-where.html"
	pageCase      = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-case.html"
	pageLiterals  = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-literals.html"
	pageNested    = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-nested-queries.html"
	pageJSON      = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-json.html"
	pageTypes     = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-data-types.html"
	pageOperators = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-operators.html"
	pageFunctions = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html"
	pageBinary    = "https://docs.aws.amazon.com/iot/latest/developerguide/binary-payloads.html"
	pageVersion   = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-rule-sql-version.html"
)

type sqlCase struct {
	name    string
	page    string
	sql     string
	topic   string // default topic/subtopic
	payload string
	msg     func(*Message)
	want    string // the outgoing payload: compared as JSON unless raw
	raw     bool   // compare want byte for byte (not JSON)
	noMatch bool   // WHERE is not true: no output
	noTopic bool   // the topic does not match FROM: the rule does not run
}

const colorTemp = `{"color":"red", "temperature":50}`

// fn builds the case for one function example: SELECT <expr> AS v FROM ... on
// an empty object; want is the JSON of v ("" when v is Undefined).
func fn(name, expr, want string) sqlCase {
	w := `{}`
	if want != "" {
		w = `{"v":` + want + `}`
	}
	return sqlCase{name: name, page: pageFunctions, sql: "SELECT " + expr + " AS v FROM 'topic/subtopic'", payload: `{}`, want: w}
}

func corpus() []sqlCase {
	cs := []sqlCase{
		// AWS IoT SQL reference: the introduction's statement.
		{name: "reference/rgb", page: pageReference, sql: "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
			payload: `{"color":"red","temperature":100}`, want: `{"rgb":"red"}`},
		{name: "reference/rgb-cold (derived)", page: pageReference, sql: "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
			payload: `{"color":"red","temperature":50}`, noMatch: true},

		// SELECT clause.
		{name: "select/star", page: pageSelect, sql: "SELECT * FROM 'topic/subtopic'", payload: colorTemp, want: colorTemp},
		{name: "select/field", page: pageSelect, sql: "SELECT color FROM 'topic/subtopic'", payload: colorTemp, want: `{"color":"red"}`},
		{name: "select/as", page: pageSelect, sql: "SELECT color AS my_color FROM 'topic/subtopic'", payload: colorTemp, want: `{"my_color":"red"}`},
		{name: "select/several", page: pageSelect, sql: "SELECT color as my_color, temperature as fahrenheit FROM 'topic/subtopic'",
			payload: colorTemp, want: `{"my_color":"red","fahrenheit":50}`},
		{name: "select/star-plus", page: pageSelect, sql: "SELECT *, 15 as speed FROM 'topic/subtopic'",
			payload: colorTemp, want: `{"color":"red", "temperature":50, "speed":15}`},
		{name: "select/value", page: pageSelect, sql: "SELECT VALUE color FROM 'topic/subtopic'", payload: colorTemp, want: `"red"`},
		{name: "select/value-array (derived: an array as top-level output)", page: pageSelect,
			sql: "SELECT VALUE [color, temperature] FROM 'topic/subtopic'", payload: colorTemp, want: `["red",50]`},
		{name: "select/nested-path", page: pageSelect, sql: "SELECT color.red as red_value FROM 'topic/subtopic'",
			payload: `{"color":{"red":255,"green":0,"blue":0}, "temperature":50}`, want: `{"red_value":255}`},
		{name: "select/functions-and-grouping", page: pageSelect,
			sql:     "SELECT (temperature - 32) * 5 / 9 AS celsius, upper(color) as my_color FROM 'topic/subtopic'",
			payload: colorTemp, want: `{"celsius":10,"my_color":"RED"}`},
		{name: "select/missing-field-omitted (derived)", page: pageSelect, sql: "SELECT color, speed FROM 'topic/subtopic'",
			payload: colorTemp, want: `{"color":"red"}`},

		// FROM clause: the rule runs only for topics its filter matches.
		{name: "from/exact", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/subtopic'", payload: `{"temperature": 50}`, want: `{"t":50}`},
		{name: "from/exact-other", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/subtopic'", topic: "topic/subtopic-2",
			payload: `{"temperature": 50}`, noTopic: true},
		{name: "from/hash-1", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/#'", payload: `{"temperature": 50}`, want: `{"t":50}`},
		{name: "from/hash-2", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/#'", topic: "topic/subtopic-2",
			payload: `{"temperature": 60}`, want: `{"t":60}`},
		{name: "from/hash-3", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/#'", topic: "topic/subtopic-3/details",
			payload: `{"temperature": 70}`, want: `{"t":70}`},
		{name: "from/hash-other", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/#'", topic: "topic-2/subtopic-x",
			payload: `{"temperature": 80}`, noTopic: true},
		{name: "from/plus-1", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/+'", payload: `{"temperature": 50}`, want: `{"t":50}`},
		{name: "from/plus-2", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/+'", topic: "topic/subtopic-2",
			payload: `{"temperature": 60}`, want: `{"t":60}`},
		{name: "from/plus-too-deep", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/+'", topic: "topic/subtopic-3/details",
			payload: `{"temperature": 70}`, noTopic: true},
		{name: "from/plus-other", page: pageFrom, sql: "SELECT temperature AS t FROM 'topic/+'", topic: "topic-2/subtopic-x",
			payload: `{"temperature": 80}`, noTopic: true},

		// WHERE clause.
		{name: "where/and-false", page: pageWhere, sql: "SELECT color AS my_color FROM 'topic/subtopic' WHERE temperature > 50 AND color <> 'red'",
			payload: `{"color":"red", "temperature":40}`, noMatch: true},
		{name: "where/and-true (derived)", page: pageWhere, sql: "SELECT color AS my_color FROM 'topic/subtopic' WHERE temperature > 50 AND color <> 'red'",
			payload: `{"color":"blue", "temperature":60}`, want: `{"my_color":"blue"}`},
		{name: "where/non-json", page: pageWhere,
			sql:     "SELECT decode(encode(*, 'base64'), 'base64') AS value FROM 'topic/subtopic' WHERE decode(encode(*, 'base64'), 'base64') > 50",
			payload: `80`, want: `{"value":80}`},
		{name: "where/non-json-below (derived)", page: pageWhere,
			sql:     "SELECT decode(encode(*, 'base64'), 'base64') AS value FROM 'topic/subtopic' WHERE decode(encode(*, 'base64'), 'base64') > 50",
			payload: `40`, noMatch: true},

		// CASE statements.
		{name: "case/caution", page: pageCase, sql: caseSQL, payload: `{"color":"yellow"}`, want: `{"instructions":"caution"}`},
		{name: "case/go (derived)", page: pageCase, sql: caseSQL, payload: `{"color":"green"}`, want: `{"instructions":"go"}`},
		{name: "case/else (derived)", page: pageCase, sql: caseSQL, payload: `{"color":"blue"}`, want: `{"instructions":"you are not at a stop light"}`},
		{name: "case/undefined-subject (derived)", page: pageCase, sql: caseSQL, payload: `{"colour":"red"}`, want: `{}`},
		{name: "case/no-else (derived)", page: pageCase, sql: "SELECT CASE color WHEN 'red' THEN 'stop' END AS i FROM 'topic/subtopic'",
			payload: `{"color":"blue"}`, want: `{}`},

		// Literals.
		{name: "literals/object", page: pageLiterals,
			sql:     "SELECT {'latitude': get(lat_long, 0),'longitude':get(lat_long, 1)} as lat_long FROM 'topic/subtopic'",
			payload: `{"lat_long": [47.606,-122.332]}`, want: `{"lat_long":{"latitude":47.606,"longitude":-122.332}}`},
		// The page prints 47.606 for an input of 47.696; the output is the input.
		{name: "literals/array", page: pageLiterals, sql: "SELECT [lat,long] as lat_long FROM 'topic/subtopic'",
			payload: `{"lat": 47.696, "long": -122.332}`, want: `{"lat_long": [47.696,-122.332]}`},

		// Nested object queries.
		{name: "nested/value", page: pageNested, sql: "SELECT (SELECT VALUE n FROM e) as sensors FROM 'my/topic'", topic: "my/topic",
			payload: senml, want: `{"sensors":["temperature","light","acidity"]}`},
		{name: "nested/where", page: pageNested, sql: "SELECT (SELECT v FROM e WHERE n = 'temperature') as temperature FROM 'my/topic'",
			topic: "my/topic", payload: senml, want: `{"temperature":[{"v":22.5}]}`},
		{name: "nested/flatten", page: pageNested, sql: "SELECT get((SELECT v FROM e WHERE n = 'temperature'), 0).v as temperature FROM 'topic'",
			topic: "topic", payload: senml, want: `{"temperature":22.5}`},
		{name: "version/inter-object-query", page: pageVersion, sql: "SELECT (SELECT v FROM e WHERE n = 'temperature') as temperature FROM 'my/topic'",
			topic: "my/topic", payload: senml, want: `{"temperature":[{"v":22.5}]}`},

		// JSON extensions.
		{name: "json/dot (derived: AS with one name)", page: pageJSON, sql: "SELECT foo.bar AS bar FROM 'topic/subtopic'",
			payload: `{"foo":{"bar":"RED","bar1":"GREEN","bar2":"BLUE"}}`, want: `{"bar":"RED"}`},
		{name: "json/get-hyphen-and-digits", page: pageJSON, topic: "iot/rules",
			sql:     `SELECT * from 'iot/rules' WHERE get(get(get(mydata,"item2"),"0"),"my-key") = "myValue"`,
			payload: `{"mydata":{"item2":{"0":{"my-key":"myValue"}}}}`, want: `{"mydata":{"item2":{"0":{"my-key":"myValue"}}}}`},
		{name: "json/md5-attribute", page: pageJSON, sql: "SELECT temp, md5(deviceid) AS hashed_id FROM 'topic/#'",
			payload: `{"deviceid":"iot123","temp":54.98,"humidity":32.43,"coords":{"latitude":47.615694,"longitude":-122.3359976}}`,
			want:    `{"temp":54.98,"hashed_id":"e37f81fb397e595c4aeb5645b8cbbbd1"}`},
		{name: "json/star-non-json", page: pageJSON, sql: "SELECT * FROM 'topic/subtopic'", payload: "\x00\x01raw", want: "\x00\x01raw", raw: true},

		// Data types and conversions.
		{name: "types/null-literal", page: pageTypes, sql: "SELECT NULL AS n FROM 'topic/subtopic'", payload: `{}`, want: `{"n":null}`},
		{name: "types/null-vs-undefined", page: pageTypes, sql: "SELECT foo, bar FROM 'topic/subtopic'", payload: `{"foo":null}`, want: `{"foo":null}`},
		{name: "types/undefined-by-itself-is-empty", page: pageTypes, sql: "SELECT VALUE bar FROM 'topic/subtopic'", payload: `{"foo":null}`, want: "", raw: true},
		{name: "types/whole-decimal-is-int", page: pageTypes, sql: "SELECT VALUE x FROM 'topic/subtopic'", payload: `{"x":10.0}`, want: "10", raw: true},
		{name: "types/string-to-decimal-abs", page: pageTypes, sql: `SELECT abs("-5.123") AS v FROM 'topic/subtopic'`, payload: `{}`, want: `{"v":5.123}`},
		{name: "types/string-exponent (derived)", page: pageTypes, sql: `SELECT "5E-12" * 1 AS v FROM 'topic/subtopic'`, payload: `{}`, want: `{"v":5E-12}`},
		{name: "types/bad-string-is-undefined (derived)", page: pageTypes, sql: `SELECT abs("5.") AS v FROM 'topic/subtopic'`, payload: `{}`, want: `{}`},
		{name: "types/wrong-type-is-undefined", page: pageTypes, sql: `SELECT abs(true) AS v FROM 'topic/subtopic'`, payload: `{}`, want: `{}`},

		// Operators.
		{name: "ops/and", page: pageOperators, sql: opSQL("true AND true"), payload: `{}`, want: `{"v":true}`},
		{name: "ops/and-strings", page: pageOperators, sql: opSQL(`"TRUE" AND "false"`), payload: `{}`, want: `{"v":false}`},
		{name: "ops/and-other", page: pageOperators, sql: opSQL("true AND 5"), payload: `{}`, want: `{}`},
		{name: "ops/or-strings", page: pageOperators, sql: opSQL(`false OR "True"`), payload: `{}`, want: `{"v":true}`},
		{name: "ops/or-undefined", page: pageOperators, sql: opSQL("true OR missing"), payload: `{}`, want: `{}`},
		{name: "ops/not", page: pageOperators, sql: opSQL("NOT false"), payload: `{}`, want: `{"v":true}`},
		{name: "ops/not-string", page: pageOperators, sql: opSQL(`NOT "FALSE"`), payload: `{}`, want: `{"v":true}`},
		{name: "ops/not-other", page: pageOperators, sql: opSQL("NOT 5"), payload: `{}`, want: `{}`},
		{name: "ops/gt", page: pageOperators, sql: opSQL("5 > 3"), payload: `{}`, want: `{"v":true}`},
		{name: "ops/gt-string", page: pageOperators, sql: opSQL(`"5" > 3.5`), payload: `{}`, want: `{"v":true}`},
		{name: "ops/gt-bad-string", page: pageOperators, sql: opSQL(`"abc" > 3`), payload: `{}`, want: `{}`},
		{name: "ops/ge", page: pageOperators, sql: opSQL("3 >= 3"), payload: `{}`, want: `{"v":true}`},
		{name: "ops/lt", page: pageOperators, sql: opSQL("2.5 < 3"), payload: `{}`, want: `{"v":true}`},
		{name: "ops/le-string", page: pageOperators, sql: opSQL(`"2" <= 1`), payload: `{}`, want: `{"v":false}`},
		{name: "ops/lt-bool", page: pageOperators, sql: opSQL("true < 3"), payload: `{}`, want: `{}`},
		{name: "ops/eq-int", page: pageOperators, sql: opSQL("5 = 5"), payload: `{}`, want: `{"v":true}`},
		{name: "ops/eq-int-decimal", page: pageOperators, sql: opSQL("x = 5.5"), payload: `{"x":5.5}`, want: `{"v":true}`},
		{name: "ops/eq-string", page: pageOperators, sql: opSQL("'a' = 'a'"), payload: `{}`, want: `{"v":true}`},
		{name: "ops/eq-array", page: pageOperators, sql: opSQL("a = [1, 2]"), payload: `{"a":[1,2]}`, want: `{"v":true}`},
		{name: "ops/eq-array-order", page: pageOperators, sql: opSQL("a = [2, 1]"), payload: `{"a":[1,2]}`, want: `{"v":false}`},
		{name: "ops/eq-object-any-order", page: pageOperators, sql: opSQL("o = {'b': 2, 'a': 1}"), payload: `{"o":{"a":1,"b":2}}`, want: `{"v":true}`},
		{name: "ops/eq-mismatched", page: pageOperators, sql: opSQL("'5' = 5"), payload: `{}`, want: `{"v":false}`},
		{name: "ops/eq-undefined", page: pageOperators, sql: opSQL("missing = 5"), payload: `{}`, want: `{}`},
		{name: "ops/ne-mismatched", page: pageOperators, sql: opSQL("'5' <> 5"), payload: `{}`, want: `{"v":true}`},
		{name: "ops/ne-null", page: pageOperators, sql: opSQL("n <> NULL"), payload: `{"n":null}`, want: `{"v":false}`},
		{name: "ops/ne-array", page: pageOperators, sql: opSQL("a <> [1, 2]"), payload: `{"a":[1,2]}`, want: `{"v":false}`},
		{name: "ops/plus-string-left", page: pageOperators, sql: opSQL("'a' + 1"), payload: `{}`, want: `{"v":"a1"}`},
		{name: "ops/plus-string-right", page: pageOperators, sql: opSQL("1.5 + 'a'"), payload: `{}`, want: `{"v":"1.5a"}`},
		{name: "ops/plus-int", page: pageOperators, sql: opSQL("1 + 2"), payload: `{}`, want: `{"v":3}`},
		{name: "ops/plus-decimal", page: pageOperators, sql: opSQL("1 + 2.5"), payload: `{}`, want: `{"v":3.5}`},
		{name: "ops/plus-other", page: pageOperators, sql: opSQL("true + 1"), payload: `{}`, want: `{}`},
		{name: "ops/minus", page: pageOperators, sql: opSQL("5 - 2.5"), payload: `{}`, want: `{"v":2.5}`},
		{name: "ops/minus-string", page: pageOperators, sql: opSQL("'5' - 2"), payload: `{}`, want: `{"v":3}`},
		{name: "ops/minus-bad-string", page: pageOperators, sql: opSQL("'x' - 1"), payload: `{}`, want: `{}`},
		{name: "ops/times", page: pageOperators, sql: opSQL("3 * 4"), payload: `{}`, want: `{"v":12}`},
		{name: "ops/times-string", page: pageOperators, sql: opSQL("'1.5' * 3"), payload: `{}`, want: `{"v":4.5}`},
		{name: "ops/div-int", page: pageOperators, sql: opSQL("7 / 2"), payload: `{}`, want: `{"v":3}`},
		{name: "ops/div-decimal", page: pageOperators, sql: opSQL("7.5 / 2.5"), payload: `{}`, want: `{"v":3}`},
		{name: "ops/div-string-is-decimal", page: pageOperators, sql: opSQL("'7' / 2"), payload: `{}`, want: `{"v":3.5}`},
		{name: "ops/mod", page: pageOperators, sql: opSQL("8 % 3"), payload: `{}`, want: `{"v":2}`},
		{name: "ops/mod-string", page: pageOperators, sql: opSQL("'8.5' % 3"), payload: `{}`, want: `{"v":2.5}`},
		{name: "ops/mod-other", page: pageOperators, sql: opSQL("[1] % 3"), payload: `{}`, want: `{}`},

		// Binary payloads.
		{name: "binary/star", page: pageBinary, sql: "SELECT * FROM 'topic/subtopic'", payload: "\xff\xd8\xff\xe0jpeg", want: "\xff\xd8\xff\xe0jpeg", raw: true},
		{name: "binary/star-where-timestamp", page: pageBinary, sql: "SELECT * FROM 'topic/subtopic' WHERE timestamp() % 12 = 0",
			payload: "\x01\x02", msg: at(1200), want: "\x01\x02", raw: true},
		{name: "binary/star-where-timestamp-not (derived)", page: pageBinary, sql: "SELECT * FROM 'topic/subtopic' WHERE timestamp() % 12 = 0",
			payload: "\x01\x02", msg: at(1201), noMatch: true},
		{name: "binary/add-to-empty", page: pageBinary, sql: "SELECT *, principal() as principal, timestamp() as time FROM 'topic/subtopic'",
			payload: "", msg: func(m *Message) { m.Principal = "ba67293a"; m.Timestamp = time.UnixMilli(1481825251155) },
			want: `{"principal":"ba67293a","time":1481825251155}`},
		{name: "binary/add-to-json", page: pageBinary, sql: "SELECT *, principal() as principal, timestamp() as time FROM 'topic/subtopic'",
			payload: `{"a":1}`, msg: func(m *Message) { m.Principal = "ba67293a"; m.Timestamp = time.UnixMilli(1481825251155) },
			want: `{"a":1,"principal":"ba67293a","time":1481825251155}`},
		{name: "binary/encode", page: pageBinary, sql: "SELECT encode(*, 'base64') AS data, timestamp() AS ts FROM 'topic/subtopic'",
			payload: "\x00\x01\x02", msg: at(5), want: `{"data":"AAEC","ts":5}`},
		{name: "binary/where-field-undefined", page: pageBinary, sql: "SELECT * FROM 'topic/subtopic' WHERE device_type = 'thermostat'",
			payload: "\x00\x01", noMatch: true},
		{name: "binary/where-field-json (derived)", page: pageBinary, sql: "SELECT * FROM 'topic/subtopic' WHERE device_type = 'thermostat'",
			payload: `{"device_type":"thermostat"}`, want: `{"device_type":"thermostat"}`},
		{name: "binary/decode-string", page: pageBinary, sql: "SELECT decode(encode(*, 'base64'), 'base64') AS payload FROM 'topic'",
			topic: "topic", payload: "hello", want: `{"payload":"hello"}`},
	}
	cs = append(cs, setCorpus()...)
	return append(cs, functionCorpus()...)
}

const caseSQL = `SELECT CASE color
        WHEN 'green' THEN 'go'
        WHEN 'yellow' THEN 'caution'
        WHEN 'red' THEN 'stop'
        ELSE 'you are not at a stop light' END as instructions
    FROM 'topic/subtopic'`

const senml = `{"e": [
	{ "n": "temperature", "u": "Cel", "t": 1234, "v": 22.5 },
	{ "n": "light", "u": "lm", "t": 1235, "v": 135 },
	{ "n": "acidity", "u": "pH", "t": 1235, "v": 7 }]}`

func opSQL(e string) string { return "SELECT " + e + " AS v FROM 'topic/subtopic'" }

func at(ms int64) func(*Message) { return func(m *Message) { m.Timestamp = time.UnixMilli(ms) } }

// functionCorpus: the examples of the Functions page, one case each.
func functionCorpus() []sqlCase {
	cs := []sqlCase{
		fn("abs", "abs(-5)", "5"),
		fn("acos", "acos(0)", "1.5707963267948966"),
		fn("asin", "asin(0)", "0"),
		fn("atan", "atan(0)", "0"),
		fn("atan2", "atan2(1, 0)", "1.5707963267948966"),
		fn("acos-imaginary (derived)", "acos(2)", ""),
		fn("bitand", "bitand(13, 5)", "5"),
		fn("bitor", "bitor(8, 5)", "13"),
		// The page's bitxor example is written bitor(13, 5) = 8; the XOR is 8.
		fn("bitxor", "bitxor(13, 5)", "8"),
		fn("bitand-decimal-rounded-down (derived)", "bitand(13.9, '5.2')", "5"),
		fn("cast-bool-int", "cast(true as Int)", "1"),
		fn("cast-decimal-int-down (derived)", "cast(5.9 as Int)", "5"),
		fn("cast-string-int (derived)", "cast('-1.2' as Integer)", "-2"),
		fn("cast-bool-decimal (derived)", "cast(false as Decimal)", "0"),
		fn("cast-int-bool (derived)", "cast(0 as Boolean)", "false"),
		fn("cast-decimal-bool (derived)", "cast(0.5 as Bool)", "true"),
		fn("cast-string-bool (derived)", "cast('TRUE' as Boolean)", "true"),
		fn("cast-int-string (derived)", "cast(12 as String)", `"12"`),
		fn("cast-array-string (derived)", "cast([1, 'a'] as varchar)", `"[1,\"a\"]"`),
		fn("cast-null-undefined (derived)", "cast(NULL as Int)", ""),
		fn("ceil", "ceil(1.2)", "2"),
		fn("ceil-negative", "ceil(-1.2)", "-1"),
		fn("chr-A", "chr(65)", `"A"`),
		fn("chr-1", "chr(49)", `"1"`),
		fn("concat-none", "concat()", ""),
		fn("concat-array-int", "concat([1, 2, 3], 4)", "[1,2,3,4]"),
		fn("concat-array-string", `concat([1, 2, 3], "hello")`, `[1,2,3,"hello"]`),
		fn("concat-strings", `concat("con", "cat")`, `"concat"`),
		fn("concat-int-string", `concat(1, "hello")`, `"1hello"`),
		fn("concat-three", `concat("he","is","man")`, `"heisman"`),
		fn("concat-arrays", `concat([1, 2, 3], "hello", [4, 5, 6])`, `[1,2,3,"hello",4,5,6]`),
		fn("cos", "cos(0)", "1"),
		fn("cosh", "cosh(2.3)", "5.037220649268761"),
		fn("endswith", `endswith("cat","at")`, "true"),
		fn("endswith-null (derived)", `endswith(NULL,"at")`, ""),
		fn("exp", "exp(1)", "2.718281828459045"),
		fn("floor", "floor(1.2)", "1"),
		fn("floor-negative", "floor(-1.2)", "-2"),
		fn("get-array", `get(["a", "b", "c"], 1)`, `"b"`),
		fn("get-object", `get({"a":"b"}, "a")`, `"b"`),
		fn("get-out-of-bounds (derived)", `get(["a"], 3)`, ""),
		fn("md2", `md2("hello")`, `"a9046c73e00331af68917d3804f70655"`),
		fn("md5", `md5("hello")`, `"5d41402abc4b2a76b9719d911017c592"`),
		fn("indexof", `indexof("abcd", "bc")`, "1"),
		fn("isNull-5", "isNull(5)", "false"),
		fn("isNull-null", "isNull(Null)", "true"),
		fn("isUndefined-5", "isUndefined(5)", "false"),
		fn("isUndefined-floor-array", "isUndefined(floor([1,2,3]))", "true"),
		fn("length", `length("hi")`, "2"),
		fn("length-bool", "length(false)", "5"),
		fn("ln", "ln(exp(1))", "1"),
		fn("log", "log(100)", "2"),
		fn("lower", `lower("HELLO")`, `"hello"`),
		fn("lower-array", `lower(["HELLO"])`, `"[\"hello\"]"`),
		fn("lpad", `lpad("hello", 2)`, `"  hello"`),
		fn("lpad-int", "lpad(1, 3)", `"   1"`),
		fn("lpad-clamped (derived)", "length(lpad('', 5000))", "1000"),
		// The page prints "hi " for Ltrim(" h i "); removing the leading
		// white space leaves "h i ".
		fn("ltrim", `Ltrim(" h i ")`, `"h i "`),
		fn("mod", "mod(8, 3)", "2"),
		fn("nanvl", "Nanvl(8, 3)", "8"),
		fn("nanvl-undefined (derived)", "nanvl(missing, 3)", "3"),
		fn("numbytes", `numbytes("hi")`, "2"),
		fn("numbytes-euro", `numbytes("€")`, "3"),
		fn("parse_time", `parse_time("yyyy.MM.dd G 'at' HH:mm:ss z", 100000000, 'America/Belize')`, `"1970.01.01 AD at 21:46:40 CST"`),
		fn("parse_time-year-utc", `parse_time('yyyy', 1481825251155, 'UTC')`, `"2016"`),
		fn("power", "power(2, 5)", "32"),
		fn("regexp_matches", `regexp_matches("aaaa", "a{2,}")`, "true"),
		fn("regexp_matches-no", `regexp_matches("aaaa", "b")`, "false"),
		fn("regexp_replace", `regexp_replace("abcd", "bc", "x")`, `"axd"`),
		fn("regexp_replace-group", `regexp_replace("abcd", "b(.*)d", "$1")`, `"ac"`),
		fn("regexp_substr", `regexp_substr("hihihello", "hi")`, `"hi"`),
		fn("regexp_substr-star", `regexp_substr("hihihello", "(hi)*")`, `"hihi"`),
		fn("remainder", "remainder(8, 3)", "2"),
		fn("replace", `replace("abcd", "bc", "x")`, `"axd"`),
		fn("replace-all", `replace("abcdabcd", "b", "x")`, `"axcdaxcd"`),
		fn("rpad", `rpad("hello", 2)`, `"hello  "`),
		fn("rpad-int", "rpad(1, 3)", `"1   "`),
		fn("round-1.2", "Round(1.2)", "1"),
		fn("round-1.5", "Round(1.5)", "2"),
		fn("round-1.7", "Round(1.7)", "2"),
		fn("round--1.1", "Round(-1.1)", "-1"),
		fn("round--1.5", "Round(-1.5)", "-2"),
		fn("rtrim", `rtrim(" h i ")`, `" h i"`),
		fn("sign-negative", "sign(-7)", "-1"),
		fn("sign-zero", "sign(0)", "0"),
		fn("sign-positive", "sign(13)", "1"),
		fn("sin", "sin(0)", "0"),
		fn("sinh", "sinh(2.3)", "4.936961805545957"),
		fn("substring-0", `substring("012345", 0)`, `"012345"`),
		fn("substring-2", `substring("012345", 2)`, `"2345"`),
		fn("substring-decimal", `substring("012345", 2.745)`, `"2345"`),
		fn("substring-int", "substring(123, 2)", `"3"`),
		fn("substring-negative", `substring("012345", -1)`, `"012345"`),
		fn("substring-bool", "substring(true, 1.2)", `"rue"`),
		fn("substring-huge-negative", "substring(false, -2.411E247)", `"false"`),
		fn("substring-range", `substring("012345", 1, 3)`, `"12"`),
		fn("substring-clamped", `substring("012345", -50, 50)`, `"012345"`),
		fn("substring-empty", `substring("012345", 3, 1)`, `""`),
		fn("sql_version", "sql_version()", `"2016-03-23"`),
		fn("sqrt", "sqrt(9)", "3"),
		fn("startswith", `startswith("ranger","ran")`, "true"),
		fn("tan", "tan(3)", "-0.1425465430742778"),
		fn("tanh", "tanh(2.3)", "0.9800963962661914"),
		fn("time_to_epoch-offset", `time_to_epoch("2020-04-03 09:45:18 UTC+01:00", "yyyy-MM-dd HH:mm:ss VV")`, "1585903518000"),
		fn("time_to_epoch-month-name", `time_to_epoch("18 December 2015", "dd MMMM yyyy")`, "1450396800000"),
		fn("time_to_epoch-region", `time_to_epoch("2007-12-03 10:15:30.592 America/Los_Angeles", "yyyy-MM-dd HH:mm:ss.SSS z")`, "1196705730592"),
		fn("trim", `Trim(" hi ")`, `"hi"`),
		fn("trunc-0", "trunc(2.3, 0)", "2"),
		fn("trunc-2", "trunc(2.3123, 2)", "2.31"),
		fn("trunc-down", "trunc(2.888, 2)", "2.88"),
		fn("trunc-zeros", "trunc(2.00, 5)", "2"),
		fn("upper", `upper("hello")`, `"HELLO"`),
		fn("upper-array", `upper(["hello"])`, `"[\"HELLO\"]"`),
		fn("sha1 (derived: standard conversions and digest)", `sha1("hello")`, `"aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"`),
		fn("sha256 (derived)", `sha256("hello")`, `"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"`),
		fn("get_or_default (derived)", "get_or_default(missing, 'dflt')", `"dflt"`),
	}
	withMsg := func(c sqlCase, topic string, f func(*Message)) sqlCase {
		c.topic, c.msg = topic, f
		c.sql = c.sql[:len(c.sql)-len("'topic/subtopic'")] + "'#'"
		return c
	}
	mqtt5 := func(m *Message) {
		m.MQTT5 = true
		m.ContentType = "application/json"
		m.ResponseTopic = "reply/here"
		m.CorrelationData = []byte("cid")
		m.PayloadUTF8 = true
		m.UserProperties = []UserProperty{{"k1", "v1"}, {"k2", "v2"}, {"k1", "v3"}}
	}
	cs = append(cs,
		withMsg(fn("topic", "topic()", `"things/myThings/thingOne"`), "things/myThings/thingOne", nil),
		withMsg(fn("topic-1", "topic(1)", `"things"`), "things/myThings/thingOne", nil),
		withMsg(fn("topic-out-of-range (derived)", "topic(4)", ""), "things/myThings/thingOne", nil),
		withMsg(fn("clientid", "clientid()", `"123456789012"`), "a", func(m *Message) { m.ClientID = "123456789012" }),
		withMsg(fn("clientid-not-mqtt", "clientid()", `"n/a"`), "a", nil),
		withMsg(fn("principal", "principal()", `"ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373"`), "a",
			func(m *Message) { m.Principal = "ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373" }),
		withMsg(fn("timestamp", "timestamp()", "1481825251155"), "a", at(1481825251155)),
		withMsg(fn("traceid", "traceid()", `"12345678-1234-1234-1234-123456789012"`), "a",
			func(m *Message) { m.TraceID = "12345678-1234-1234-1234-123456789012" }),
		withMsg(fn("traceid-not-mqtt", "traceid()", ""), "a", nil),
		withMsg(fn("get_mqtt_property-content_type", "get_mqtt_property('content_type')", `"application/json"`), "a", mqtt5),
		withMsg(fn("get_mqtt_property-format_indicator", "get_mqtt_property('format_indicator')", `"UTF8_DATA"`), "a", mqtt5),
		withMsg(fn("get_mqtt_property-response_topic", "get_mqtt_property('response_topic')", `"reply/here"`), "a", mqtt5),
		withMsg(fn("get_mqtt_property-correlation_data", "get_mqtt_property('correlation_data')", `"Y2lk"`), "a", mqtt5),
		withMsg(fn("get_mqtt_property-mqtt311", "get_mqtt_property('content_type')", ""), "a", nil),
		withMsg(fn("get_user_properties-key", "get_user_properties('k1')", `["v1","v3"]`), "a", mqtt5),
		withMsg(fn("get_user_properties-all", "get_user_properties()", `[{"k1":"v1"},{"k2":"v2"},{"k1":"v3"}]`), "a", mqtt5),
	)
	for i := range cs {
		if cs[i].page == "" {
			cs[i].page = pageFunctions
		}
		cs[i].name = "functions/" + cs[i].name
	}
	// transform(): the page's three examples.
	cs = append(cs,
		sqlCase{name: "functions/transform-1", page: pageFunctions, topic: "A/B", payload: transformIn,
			sql:  `select value transform("enrichArray", attributes, values) from 'A/B'`,
			want: `[{"a":3,"data1":1,"data2":2},{"b":4,"data1":1,"data2":2},{"c":5,"data1":1,"data2":2}]`},
		sqlCase{name: "functions/transform-2", page: pageFunctions, topic: "A/B", payload: transformIn,
			sql:  `select value transform("enrichArray", {"key": attributes.data1}, values) from 'A/B'`,
			want: `[{"a":3,"key":1},{"b":4,"key":1},{"c":5,"key":1}]`},
		sqlCase{name: "functions/transform-3", page: pageFunctions, topic: "A/B", payload: transformIn3,
			sql: `select value transform('enrichArray', (select a, b from data2), (select value c from data2)) from 'A/B'`,
			want: `[{"x":{"someInt":5,"someString":"hello"},"y":true,"a":"first attribute","b":"second attribute"},` +
				`{"x":{"someInt":10,"someString":"world"},"y":false,"a":"first attribute","b":"second attribute"}]`},
		sqlCase{name: "functions/decode-json", page: pageFunctions, payload: `{"encoded_temp": "eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg=="}`,
			sql: `SELECT decode(encoded_temp,"base64").temperature AS temp from 'topic/subtopic'`, want: `{"temp":33}`},
		sqlCase{name: "functions/decode-bad-is-null (derived)", page: pageFunctions, payload: `{"e": "***"}`,
			sql: `SELECT decode(e, 'base64') AS v from 'topic/subtopic'`, want: `{"v":null}`},
	)
	return cs
}

const transformIn = `{"attributes":{"data1":1,"data2":2},"values":[{"a":3},{"b":4},{"c":5}]}`

const transformIn3 = `{"data1":"example","data2":{"a":"first attribute","b":"second attribute","c":[
	{"x":{"someInt":5,"someString":"hello"},"y":true},{"x":{"someInt":10,"someString":"world"},"y":false}]}}`

func TestCorpus(t *testing.T) {
	cases := corpus()
	if len(cases) < 100 {
		t.Fatalf("corpus has %d cases; want at least 100", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := CompileRule(0, Config{Name: "corpus", SQL: tc.sql, Actions: []ActionConfig{{Forward: &ForwardConfig{Route: "r"}}}})
			if err != nil {
				t.Fatalf("compile %q: %v (reference: %s)", tc.sql, err, tc.page)
			}
			topic := tc.topic
			if topic == "" {
				topic = "topic/subtopic"
			}
			m := &Message{Topic: topic, Payload: []byte(tc.payload)}
			if tc.msg != nil {
				tc.msg(m)
			}
			if got := r.Matches(topic); got != !tc.noTopic {
				t.Fatalf("Matches(%q) = %v; want %v (reference: %s)", topic, got, !tc.noTopic, tc.page)
			}
			if tc.noTopic {
				return
			}
			res := r.Evaluate(m)
			if res.Matched != !tc.noMatch {
				t.Fatalf("matched = %v; want %v (reference: %s)", res.Matched, !tc.noMatch, tc.page)
			}
			if len(res.Failures) > 0 {
				t.Fatalf("failures %+v; want none", res.Failures)
			}
			if tc.noMatch {
				return
			}
			if tc.raw {
				if !bytes.Equal(res.Payload, []byte(tc.want)) {
					t.Fatalf("got %q; want %q (reference: %s)", res.Payload, tc.want, tc.page)
				}
				return
			}
			if !jsonEqual(t, res.Payload, []byte(tc.want)) {
				t.Fatalf("got %s; want %s (reference: %s)", res.Payload, tc.want, tc.page)
			}
		})
	}
	t.Logf("%d corpus cases", len(cases))
}

func jsonEqual(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	dg := json.NewDecoder(bytes.NewReader(got))
	dg.UseNumber()
	if err := dg.Decode(&g); err != nil {
		t.Fatalf("output %q is not JSON: %v", got, err)
	}
	dw := json.NewDecoder(bytes.NewReader(want))
	dw.UseNumber()
	if err := dw.Decode(&w); err != nil {
		t.Fatalf("want %q is not JSON: %v", want, err)
	}
	return reflect.DeepEqual(normalizeNumbers(g), normalizeNumbers(w))
}

// normalizeNumbers compares numbers by value: 5E-12 and 5e-12 are equal.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalizeNumbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeNumbers(x[k])
		}
	}
	return v
}

const pageSet = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-set.html"

// The SET clause page gives the syntax and where variables may be used; these
// cases follow from it (derived).
func setCorpus() []sqlCase {
	return []sqlCase{
		{name: "set/select-and-where", page: pageSet, payload: colorTemp,
			sql:  "SET @c = (temperature - 32) * 5 / 9 SELECT @c AS celsius FROM 'topic/subtopic' WHERE @c > 5",
			want: `{"celsius":10}`},
		{name: "set/where-false", page: pageSet, payload: `{"temperature":32}`,
			sql: "SET @c = (temperature - 32) * 5 / 9 SELECT @c AS celsius FROM 'topic/subtopic' WHERE @c > 5", noMatch: true},
		{name: "set/uses-earlier-variable", page: pageSet, payload: colorTemp,
			sql: "SET @a = temperature * 2, @b = @a + 1 SELECT @b AS b FROM 'topic/subtopic'", want: `{"b":101}`},
		{name: "set/in-nested-select", page: pageSet, topic: "my/topic", payload: senml,
			sql:  "SET @want = 'light' SELECT (SELECT VALUE v FROM e WHERE n = @want) AS light FROM 'my/topic'",
			want: `{"light":[135]}`},
		{name: "set/function-parameter", page: pageSet, payload: colorTemp,
			sql: "SET @col = upper(color) SELECT concat(@col, '!') AS shout FROM 'topic/subtopic'", want: `{"shout":"RED!"}`},
		{name: "set/value-output", page: pageSet, payload: colorTemp,
			sql: "SET @t = temperature SELECT VALUE @t FROM 'topic/subtopic'", want: `50`},
	}
}
