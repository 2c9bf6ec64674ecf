// Package sqltest holds the AWS IoT SQL corpus that the tests of the
// language (gateway/rules/sql: fuzz seeds) and of the engine (gateway/rules:
// every case run through a rule) share. Only tests import it. It imports
// the language only (for its Message type).
package sqltest

import (
	"time"

	"github.com/edgegw/edgegw/gateway/rules/sql"
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
	// PageBinary is the binary payloads page of the reference.
	PageBinary  = "https://docs.aws.amazon.com/iot/latest/developerguide/binary-payloads.html"
	pageVersion = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-rule-sql-version.html"
)

// Case is one statement of the corpus with its input message and the
// output AWS IoT documents for it.
type Case struct {
	Name    string
	Page    string
	SQL     string
	Topic   string // default topic/subtopic
	Payload string
	Msg     func(*sql.Message)
	Want    string // the outgoing payload: compared as JSON unless raw
	Raw     bool   // compare want byte for byte (not JSON)
	NoMatch bool   // WHERE is not true: no output
	NoTopic bool   // the topic does not match FROM: the rule does not run
}

const colorTemp = `{"color":"red", "temperature":50}`

// fn builds the case for one function example: SELECT <expr> AS v FROM ... on
// an empty object; want is the JSON of v ("" when v is Undefined).
func fn(name, expr, want string) Case {
	w := `{}`
	if want != "" {
		w = `{"v":` + want + `}`
	}
	return Case{Name: name, Page: pageFunctions, SQL: "SELECT " + expr + " AS v FROM 'topic/subtopic'", Payload: `{}`, Want: w}
}

// Corpus is every case: at least 100, from the pages of the AWS IoT SQL
// reference each names.
func Corpus() []Case {
	cs := []Case{
		// AWS IoT SQL reference: the introduction's statement.
		{Name: "reference/rgb", Page: pageReference, SQL: "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
			Payload: `{"color":"red","temperature":100}`, Want: `{"rgb":"red"}`},
		{Name: "reference/rgb-cold (derived)", Page: pageReference, SQL: "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
			Payload: `{"color":"red","temperature":50}`, NoMatch: true},

		// SELECT clause.
		{Name: "select/star", Page: pageSelect, SQL: "SELECT * FROM 'topic/subtopic'", Payload: colorTemp, Want: colorTemp},
		{Name: "select/field", Page: pageSelect, SQL: "SELECT color FROM 'topic/subtopic'", Payload: colorTemp, Want: `{"color":"red"}`},
		{Name: "select/as", Page: pageSelect, SQL: "SELECT color AS my_color FROM 'topic/subtopic'", Payload: colorTemp, Want: `{"my_color":"red"}`},
		{Name: "select/several", Page: pageSelect, SQL: "SELECT color as my_color, temperature as fahrenheit FROM 'topic/subtopic'",
			Payload: colorTemp, Want: `{"my_color":"red","fahrenheit":50}`},
		{Name: "select/star-plus", Page: pageSelect, SQL: "SELECT *, 15 as speed FROM 'topic/subtopic'",
			Payload: colorTemp, Want: `{"color":"red", "temperature":50, "speed":15}`},
		{Name: "select/value", Page: pageSelect, SQL: "SELECT VALUE color FROM 'topic/subtopic'", Payload: colorTemp, Want: `"red"`},
		{Name: "select/value-array (derived: an array as top-level output)", Page: pageSelect,
			SQL: "SELECT VALUE [color, temperature] FROM 'topic/subtopic'", Payload: colorTemp, Want: `["red",50]`},
		{Name: "select/nested-path", Page: pageSelect, SQL: "SELECT color.red as red_value FROM 'topic/subtopic'",
			Payload: `{"color":{"red":255,"green":0,"blue":0}, "temperature":50}`, Want: `{"red_value":255}`},
		{Name: "select/functions-and-grouping", Page: pageSelect,
			SQL:     "SELECT (temperature - 32) * 5 / 9 AS celsius, upper(color) as my_color FROM 'topic/subtopic'",
			Payload: colorTemp, Want: `{"celsius":10,"my_color":"RED"}`},
		{Name: "select/missing-field-omitted (derived)", Page: pageSelect, SQL: "SELECT color, speed FROM 'topic/subtopic'",
			Payload: colorTemp, Want: `{"color":"red"}`},

		// FROM clause: the rule runs only for topics its filter matches.
		{Name: "from/exact", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/subtopic'", Payload: `{"temperature": 50}`, Want: `{"t":50}`},
		{Name: "from/exact-other", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/subtopic'", Topic: "topic/subtopic-2",
			Payload: `{"temperature": 50}`, NoTopic: true},
		{Name: "from/hash-1", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/#'", Payload: `{"temperature": 50}`, Want: `{"t":50}`},
		{Name: "from/hash-2", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/#'", Topic: "topic/subtopic-2",
			Payload: `{"temperature": 60}`, Want: `{"t":60}`},
		{Name: "from/hash-3", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/#'", Topic: "topic/subtopic-3/details",
			Payload: `{"temperature": 70}`, Want: `{"t":70}`},
		{Name: "from/hash-other", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/#'", Topic: "topic-2/subtopic-x",
			Payload: `{"temperature": 80}`, NoTopic: true},
		{Name: "from/plus-1", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/+'", Payload: `{"temperature": 50}`, Want: `{"t":50}`},
		{Name: "from/plus-2", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/+'", Topic: "topic/subtopic-2",
			Payload: `{"temperature": 60}`, Want: `{"t":60}`},
		{Name: "from/plus-too-deep", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/+'", Topic: "topic/subtopic-3/details",
			Payload: `{"temperature": 70}`, NoTopic: true},
		{Name: "from/plus-other", Page: pageFrom, SQL: "SELECT temperature AS t FROM 'topic/+'", Topic: "topic-2/subtopic-x",
			Payload: `{"temperature": 80}`, NoTopic: true},

		// WHERE clause.
		{Name: "where/and-false", Page: pageWhere, SQL: "SELECT color AS my_color FROM 'topic/subtopic' WHERE temperature > 50 AND color <> 'red'",
			Payload: `{"color":"red", "temperature":40}`, NoMatch: true},
		{Name: "where/and-true (derived)", Page: pageWhere, SQL: "SELECT color AS my_color FROM 'topic/subtopic' WHERE temperature > 50 AND color <> 'red'",
			Payload: `{"color":"blue", "temperature":60}`, Want: `{"my_color":"blue"}`},
		{Name: "where/non-json", Page: pageWhere,
			SQL:     "SELECT decode(encode(*, 'base64'), 'base64') AS value FROM 'topic/subtopic' WHERE decode(encode(*, 'base64'), 'base64') > 50",
			Payload: `80`, Want: `{"value":80}`},
		{Name: "where/non-json-below (derived)", Page: pageWhere,
			SQL:     "SELECT decode(encode(*, 'base64'), 'base64') AS value FROM 'topic/subtopic' WHERE decode(encode(*, 'base64'), 'base64') > 50",
			Payload: `40`, NoMatch: true},

		// CASE statements.
		{Name: "case/caution", Page: pageCase, SQL: caseSQL, Payload: `{"color":"yellow"}`, Want: `{"instructions":"caution"}`},
		{Name: "case/go (derived)", Page: pageCase, SQL: caseSQL, Payload: `{"color":"green"}`, Want: `{"instructions":"go"}`},
		{Name: "case/else (derived)", Page: pageCase, SQL: caseSQL, Payload: `{"color":"blue"}`, Want: `{"instructions":"you are not at a stop light"}`},
		{Name: "case/undefined-subject (derived)", Page: pageCase, SQL: caseSQL, Payload: `{"colour":"red"}`, Want: `{}`},
		{Name: "case/no-else (derived)", Page: pageCase, SQL: "SELECT CASE color WHEN 'red' THEN 'stop' END AS i FROM 'topic/subtopic'",
			Payload: `{"color":"blue"}`, Want: `{}`},

		// Literals.
		{Name: "literals/object", Page: pageLiterals,
			SQL:     "SELECT {'latitude': get(lat_long, 0),'longitude':get(lat_long, 1)} as lat_long FROM 'topic/subtopic'",
			Payload: `{"lat_long": [47.606,-122.332]}`, Want: `{"lat_long":{"latitude":47.606,"longitude":-122.332}}`},
		// The page prints 47.606 for an input of 47.696; the output is the input.
		{Name: "literals/array", Page: pageLiterals, SQL: "SELECT [lat,long] as lat_long FROM 'topic/subtopic'",
			Payload: `{"lat": 47.696, "long": -122.332}`, Want: `{"lat_long": [47.696,-122.332]}`},

		// Nested object queries.
		{Name: "nested/value", Page: pageNested, SQL: "SELECT (SELECT VALUE n FROM e) as sensors FROM 'my/topic'", Topic: "my/topic",
			Payload: senml, Want: `{"sensors":["temperature","light","acidity"]}`},
		{Name: "nested/where", Page: pageNested, SQL: "SELECT (SELECT v FROM e WHERE n = 'temperature') as temperature FROM 'my/topic'",
			Topic: "my/topic", Payload: senml, Want: `{"temperature":[{"v":22.5}]}`},
		{Name: "nested/flatten", Page: pageNested, SQL: "SELECT get((SELECT v FROM e WHERE n = 'temperature'), 0).v as temperature FROM 'topic'",
			Topic: "topic", Payload: senml, Want: `{"temperature":22.5}`},
		{Name: "version/inter-object-query", Page: pageVersion, SQL: "SELECT (SELECT v FROM e WHERE n = 'temperature') as temperature FROM 'my/topic'",
			Topic: "my/topic", Payload: senml, Want: `{"temperature":[{"v":22.5}]}`},

		// JSON extensions.
		{Name: "json/dot (derived: AS with one name)", Page: pageJSON, SQL: "SELECT foo.bar AS bar FROM 'topic/subtopic'",
			Payload: `{"foo":{"bar":"RED","bar1":"GREEN","bar2":"BLUE"}}`, Want: `{"bar":"RED"}`},
		{Name: "json/get-hyphen-and-digits", Page: pageJSON, Topic: "iot/rules",
			SQL:     `SELECT * from 'iot/rules' WHERE get(get(get(mydata,"item2"),"0"),"my-key") = "myValue"`,
			Payload: `{"mydata":{"item2":{"0":{"my-key":"myValue"}}}}`, Want: `{"mydata":{"item2":{"0":{"my-key":"myValue"}}}}`},
		{Name: "json/md5-attribute", Page: pageJSON, SQL: "SELECT temp, md5(deviceid) AS hashed_id FROM 'topic/#'",
			Payload: `{"deviceid":"iot123","temp":54.98,"humidity":32.43,"coords":{"latitude":47.615694,"longitude":-122.3359976}}`,
			Want:    `{"temp":54.98,"hashed_id":"e37f81fb397e595c4aeb5645b8cbbbd1"}`},
		{Name: "json/star-non-json", Page: pageJSON, SQL: "SELECT * FROM 'topic/subtopic'", Payload: "\x00\x01raw", Want: "\x00\x01raw", Raw: true},

		// Data types and conversions.
		{Name: "types/null-literal", Page: pageTypes, SQL: "SELECT NULL AS n FROM 'topic/subtopic'", Payload: `{}`, Want: `{"n":null}`},
		{Name: "types/null-vs-undefined", Page: pageTypes, SQL: "SELECT foo, bar FROM 'topic/subtopic'", Payload: `{"foo":null}`, Want: `{"foo":null}`},
		{Name: "types/undefined-by-itself-is-empty", Page: pageTypes, SQL: "SELECT VALUE bar FROM 'topic/subtopic'", Payload: `{"foo":null}`, Want: "", Raw: true},
		{Name: "types/whole-decimal-is-int", Page: pageTypes, SQL: "SELECT VALUE x FROM 'topic/subtopic'", Payload: `{"x":10.0}`, Want: "10", Raw: true},
		{Name: "types/string-to-decimal-abs", Page: pageTypes, SQL: `SELECT abs("-5.123") AS v FROM 'topic/subtopic'`, Payload: `{}`, Want: `{"v":5.123}`},
		{Name: "types/string-exponent (derived)", Page: pageTypes, SQL: `SELECT "5E-12" * 1 AS v FROM 'topic/subtopic'`, Payload: `{}`, Want: `{"v":5E-12}`},
		{Name: "types/bad-string-is-undefined (derived)", Page: pageTypes, SQL: `SELECT abs("5.") AS v FROM 'topic/subtopic'`, Payload: `{}`, Want: `{}`},
		{Name: "types/wrong-type-is-undefined", Page: pageTypes, SQL: `SELECT abs(true) AS v FROM 'topic/subtopic'`, Payload: `{}`, Want: `{}`},

		// Operators.
		{Name: "ops/and", Page: pageOperators, SQL: opSQL("true AND true"), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/and-strings", Page: pageOperators, SQL: opSQL(`"TRUE" AND "false"`), Payload: `{}`, Want: `{"v":false}`},
		{Name: "ops/and-other", Page: pageOperators, SQL: opSQL("true AND 5"), Payload: `{}`, Want: `{}`},
		{Name: "ops/or-strings", Page: pageOperators, SQL: opSQL(`false OR "True"`), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/or-undefined", Page: pageOperators, SQL: opSQL("true OR missing"), Payload: `{}`, Want: `{}`},
		{Name: "ops/not", Page: pageOperators, SQL: opSQL("NOT false"), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/not-string", Page: pageOperators, SQL: opSQL(`NOT "FALSE"`), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/not-other", Page: pageOperators, SQL: opSQL("NOT 5"), Payload: `{}`, Want: `{}`},
		{Name: "ops/gt", Page: pageOperators, SQL: opSQL("5 > 3"), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/gt-string", Page: pageOperators, SQL: opSQL(`"5" > 3.5`), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/gt-bad-string", Page: pageOperators, SQL: opSQL(`"abc" > 3`), Payload: `{}`, Want: `{}`},
		{Name: "ops/ge", Page: pageOperators, SQL: opSQL("3 >= 3"), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/lt", Page: pageOperators, SQL: opSQL("2.5 < 3"), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/le-string", Page: pageOperators, SQL: opSQL(`"2" <= 1`), Payload: `{}`, Want: `{"v":false}`},
		{Name: "ops/lt-bool", Page: pageOperators, SQL: opSQL("true < 3"), Payload: `{}`, Want: `{}`},
		{Name: "ops/eq-int", Page: pageOperators, SQL: opSQL("5 = 5"), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/eq-int-decimal", Page: pageOperators, SQL: opSQL("x = 5.5"), Payload: `{"x":5.5}`, Want: `{"v":true}`},
		{Name: "ops/eq-string", Page: pageOperators, SQL: opSQL("'a' = 'a'"), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/eq-array", Page: pageOperators, SQL: opSQL("a = [1, 2]"), Payload: `{"a":[1,2]}`, Want: `{"v":true}`},
		{Name: "ops/eq-array-order", Page: pageOperators, SQL: opSQL("a = [2, 1]"), Payload: `{"a":[1,2]}`, Want: `{"v":false}`},
		{Name: "ops/eq-object-any-order", Page: pageOperators, SQL: opSQL("o = {'b': 2, 'a': 1}"), Payload: `{"o":{"a":1,"b":2}}`, Want: `{"v":true}`},
		{Name: "ops/eq-mismatched", Page: pageOperators, SQL: opSQL("'5' = 5"), Payload: `{}`, Want: `{"v":false}`},
		{Name: "ops/eq-undefined", Page: pageOperators, SQL: opSQL("missing = 5"), Payload: `{}`, Want: `{}`},
		{Name: "ops/ne-mismatched", Page: pageOperators, SQL: opSQL("'5' <> 5"), Payload: `{}`, Want: `{"v":true}`},
		{Name: "ops/ne-null", Page: pageOperators, SQL: opSQL("n <> NULL"), Payload: `{"n":null}`, Want: `{"v":false}`},
		{Name: "ops/ne-array", Page: pageOperators, SQL: opSQL("a <> [1, 2]"), Payload: `{"a":[1,2]}`, Want: `{"v":false}`},
		{Name: "ops/plus-string-left", Page: pageOperators, SQL: opSQL("'a' + 1"), Payload: `{}`, Want: `{"v":"a1"}`},
		{Name: "ops/plus-string-right", Page: pageOperators, SQL: opSQL("1.5 + 'a'"), Payload: `{}`, Want: `{"v":"1.5a"}`},
		{Name: "ops/plus-int", Page: pageOperators, SQL: opSQL("1 + 2"), Payload: `{}`, Want: `{"v":3}`},
		{Name: "ops/plus-decimal", Page: pageOperators, SQL: opSQL("1 + 2.5"), Payload: `{}`, Want: `{"v":3.5}`},
		{Name: "ops/plus-other", Page: pageOperators, SQL: opSQL("true + 1"), Payload: `{}`, Want: `{}`},
		{Name: "ops/minus", Page: pageOperators, SQL: opSQL("5 - 2.5"), Payload: `{}`, Want: `{"v":2.5}`},
		{Name: "ops/minus-string", Page: pageOperators, SQL: opSQL("'5' - 2"), Payload: `{}`, Want: `{"v":3}`},
		{Name: "ops/minus-bad-string", Page: pageOperators, SQL: opSQL("'x' - 1"), Payload: `{}`, Want: `{}`},
		{Name: "ops/times", Page: pageOperators, SQL: opSQL("3 * 4"), Payload: `{}`, Want: `{"v":12}`},
		{Name: "ops/times-string", Page: pageOperators, SQL: opSQL("'1.5' * 3"), Payload: `{}`, Want: `{"v":4.5}`},
		{Name: "ops/div-int", Page: pageOperators, SQL: opSQL("7 / 2"), Payload: `{}`, Want: `{"v":3}`},
		{Name: "ops/div-decimal", Page: pageOperators, SQL: opSQL("7.5 / 2.5"), Payload: `{}`, Want: `{"v":3}`},
		{Name: "ops/div-string-is-decimal", Page: pageOperators, SQL: opSQL("'7' / 2"), Payload: `{}`, Want: `{"v":3.5}`},
		{Name: "ops/mod", Page: pageOperators, SQL: opSQL("8 % 3"), Payload: `{}`, Want: `{"v":2}`},
		{Name: "ops/mod-string", Page: pageOperators, SQL: opSQL("'8.5' % 3"), Payload: `{}`, Want: `{"v":2.5}`},
		{Name: "ops/mod-other", Page: pageOperators, SQL: opSQL("[1] % 3"), Payload: `{}`, Want: `{}`},

		// Binary payloads.
		{Name: "binary/star", Page: PageBinary, SQL: "SELECT * FROM 'topic/subtopic'", Payload: "\xff\xd8\xff\xe0jpeg", Want: "\xff\xd8\xff\xe0jpeg", Raw: true},
		{Name: "binary/star-where-timestamp", Page: PageBinary, SQL: "SELECT * FROM 'topic/subtopic' WHERE timestamp() % 12 = 0",
			Payload: "\x01\x02", Msg: at(1200), Want: "\x01\x02", Raw: true},
		{Name: "binary/star-where-timestamp-not (derived)", Page: PageBinary, SQL: "SELECT * FROM 'topic/subtopic' WHERE timestamp() % 12 = 0",
			Payload: "\x01\x02", Msg: at(1201), NoMatch: true},
		{Name: "binary/add-to-empty", Page: PageBinary, SQL: "SELECT *, principal() as principal, timestamp() as time FROM 'topic/subtopic'",
			Payload: "", Msg: func(m *sql.Message) { m.Principal = "ba67293a"; m.Timestamp = time.UnixMilli(1481825251155) },
			Want: `{"principal":"ba67293a","time":1481825251155}`},
		{Name: "binary/add-to-json", Page: PageBinary, SQL: "SELECT *, principal() as principal, timestamp() as time FROM 'topic/subtopic'",
			Payload: `{"a":1}`, Msg: func(m *sql.Message) { m.Principal = "ba67293a"; m.Timestamp = time.UnixMilli(1481825251155) },
			Want: `{"a":1,"principal":"ba67293a","time":1481825251155}`},
		{Name: "binary/encode", Page: PageBinary, SQL: "SELECT encode(*, 'base64') AS data, timestamp() AS ts FROM 'topic/subtopic'",
			Payload: "\x00\x01\x02", Msg: at(5), Want: `{"data":"AAEC","ts":5}`},
		{Name: "binary/where-field-undefined", Page: PageBinary, SQL: "SELECT * FROM 'topic/subtopic' WHERE device_type = 'thermostat'",
			Payload: "\x00\x01", NoMatch: true},
		{Name: "binary/where-field-json (derived)", Page: PageBinary, SQL: "SELECT * FROM 'topic/subtopic' WHERE device_type = 'thermostat'",
			Payload: `{"device_type":"thermostat"}`, Want: `{"device_type":"thermostat"}`},
		{Name: "binary/decode-string", Page: PageBinary, SQL: "SELECT decode(encode(*, 'base64'), 'base64') AS payload FROM 'topic'",
			Topic: "topic", Payload: "hello", Want: `{"payload":"hello"}`},
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

func at(ms int64) func(*sql.Message) {
	return func(m *sql.Message) { m.Timestamp = time.UnixMilli(ms) }
}

// functionCorpus: the examples of the Functions page, one case each.
func functionCorpus() []Case {
	cs := []Case{
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
	withMsg := func(c Case, topic string, f func(*sql.Message)) Case {
		c.Topic, c.Msg = topic, f
		c.SQL = c.SQL[:len(c.SQL)-len("'topic/subtopic'")] + "'#'"
		return c
	}
	mqtt5 := func(m *sql.Message) {
		m.MQTT5 = true
		m.ContentType = "application/json"
		m.ResponseTopic = "reply/here"
		m.CorrelationData = []byte("cid")
		m.PayloadUTF8 = true
		m.UserProperties = []sql.UserProperty{{Key: "k1", Value: "v1"}, {Key: "k2", Value: "v2"}, {Key: "k1", Value: "v3"}}
	}
	cs = append(cs,
		withMsg(fn("topic", "topic()", `"things/myThings/thingOne"`), "things/myThings/thingOne", nil),
		withMsg(fn("topic-1", "topic(1)", `"things"`), "things/myThings/thingOne", nil),
		withMsg(fn("topic-out-of-range (derived)", "topic(4)", ""), "things/myThings/thingOne", nil),
		withMsg(fn("clientid", "clientid()", `"123456789012"`), "a", func(m *sql.Message) { m.ClientID = "123456789012" }),
		withMsg(fn("clientid-not-mqtt", "clientid()", `"n/a"`), "a", nil),
		withMsg(fn("principal", "principal()", `"ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373"`), "a",
			func(m *sql.Message) { m.Principal = "ba67293af50bf2506f5f93469686da660c7c844e7b3950bfb16813e0d31e9373" }),
		withMsg(fn("timestamp", "timestamp()", "1481825251155"), "a", at(1481825251155)),
		withMsg(fn("traceid", "traceid()", `"12345678-1234-1234-1234-123456789012"`), "a",
			func(m *sql.Message) { m.TraceID = "12345678-1234-1234-1234-123456789012" }),
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
		if cs[i].Page == "" {
			cs[i].Page = pageFunctions
		}
		cs[i].Name = "functions/" + cs[i].Name
	}
	// transform(): the page's three examples.
	cs = append(cs,
		Case{Name: "functions/transform-1", Page: pageFunctions, Topic: "A/B", Payload: transformIn,
			SQL:  `select value transform("enrichArray", attributes, values) from 'A/B'`,
			Want: `[{"a":3,"data1":1,"data2":2},{"b":4,"data1":1,"data2":2},{"c":5,"data1":1,"data2":2}]`},
		Case{Name: "functions/transform-2", Page: pageFunctions, Topic: "A/B", Payload: transformIn,
			SQL:  `select value transform("enrichArray", {"key": attributes.data1}, values) from 'A/B'`,
			Want: `[{"a":3,"key":1},{"b":4,"key":1},{"c":5,"key":1}]`},
		Case{Name: "functions/transform-3", Page: pageFunctions, Topic: "A/B", Payload: transformIn3,
			SQL: `select value transform('enrichArray', (select a, b from data2), (select value c from data2)) from 'A/B'`,
			Want: `[{"x":{"someInt":5,"someString":"hello"},"y":true,"a":"first attribute","b":"second attribute"},` +
				`{"x":{"someInt":10,"someString":"world"},"y":false,"a":"first attribute","b":"second attribute"}]`},
		Case{Name: "functions/decode-json", Page: pageFunctions, Payload: `{"encoded_temp": "eyAidGVtcGVyYXR1cmUiOiAzMyB9Cg=="}`,
			SQL: `SELECT decode(encoded_temp,"base64").temperature AS temp from 'topic/subtopic'`, Want: `{"temp":33}`},
		Case{Name: "functions/decode-bad-is-null (derived)", Page: pageFunctions, Payload: `{"e": "***"}`,
			SQL: `SELECT decode(e, 'base64') AS v from 'topic/subtopic'`, Want: `{"v":null}`},
	)
	return cs
}

const transformIn = `{"attributes":{"data1":1,"data2":2},"values":[{"a":3},{"b":4},{"c":5}]}`

const transformIn3 = `{"data1":"example","data2":{"a":"first attribute","b":"second attribute","c":[
	{"x":{"someInt":5,"someString":"hello"},"y":true},{"x":{"someInt":10,"someString":"world"},"y":false}]}}`

// PageSet is the SET clause page of the reference.
const PageSet = "https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-set.html"

// The SET clause page gives the syntax and where variables may be used; these
// cases follow from it (derived).
func setCorpus() []Case {
	return []Case{
		{Name: "set/select-and-where", Page: PageSet, Payload: colorTemp,
			SQL:  "SET @c = (temperature - 32) * 5 / 9 SELECT @c AS celsius FROM 'topic/subtopic' WHERE @c > 5",
			Want: `{"celsius":10}`},
		{Name: "set/where-false", Page: PageSet, Payload: `{"temperature":32}`,
			SQL: "SET @c = (temperature - 32) * 5 / 9 SELECT @c AS celsius FROM 'topic/subtopic' WHERE @c > 5", NoMatch: true},
		{Name: "set/uses-earlier-variable", Page: PageSet, Payload: colorTemp,
			SQL: "SET @a = temperature * 2, @b = @a + 1 SELECT @b AS b FROM 'topic/subtopic'", Want: `{"b":101}`},
		{Name: "set/in-nested-select", Page: PageSet, Topic: "my/topic", Payload: senml,
			SQL:  "SET @want = 'light' SELECT (SELECT VALUE v FROM e WHERE n = @want) AS light FROM 'my/topic'",
			Want: `{"light":[135]}`},
		{Name: "set/function-parameter", Page: PageSet, Payload: colorTemp,
			SQL: "SET @col = upper(color) SELECT concat(@col, '!') AS shout FROM 'topic/subtopic'", Want: `{"shout":"RED!"}`},
		{Name: "set/value-output", Page: PageSet, Payload: colorTemp,
			SQL: "SET @t = temperature SELECT VALUE @t FROM 'topic/subtopic'", Want: `50`},
	}
}
