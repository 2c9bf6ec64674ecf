// Package rules is edgegw's rules engine: rules written in the AWS IoT SQL
// dialect (version 2016-03-23), compiled once when the configuration is loaded
// and evaluated for every message whose topic matches their FROM filter, so a
// rule can move between AWS IoT Core and the gateway unchanged.
//
// What a rule can say follows the AWS IoT SQL reference
// (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-reference.html):
//
//   - SELECT *, fields, nested paths (a.b.c), indexes (a[0]), AS names,
//     literals (numbers, 'strings' or "strings", true, false, NULL, {'k': v}
//     objects, [a, b] arrays), SELECT VALUE, CASE ... WHEN ... ELSE ... END
//     (the documented CASE v WHEN t form and the searched CASE WHEN cond form),
//     nested object queries (SELECT ... FROM array_field WHERE ...).
//   - FROM 'a/+/b/#': a topic filter in quotes; WHERE with any expression.
//   - SET @v = expr, ... before SELECT: variables evaluated once per message,
//     usable in later SETs, SELECT, WHERE, nested SELECTs and action templates.
//   - Operators with AWS's type tables: AND OR NOT, = <> < <= > >=, + (numbers
//     or string concatenation), - * / %. A missing field is Undefined;
//     Undefined propagates through operators and is omitted from the output.
//   - The functions that need no cloud service, with AWS's argument conversion
//     tables (see gateway/rules/sql funcs.go for the list). Functions that need an AWS service
//     (aws_lambda, get_dynamodb, get_secret, get_thing_shadow,
//     get_registry_data, machinelearning_predict, decode(..., 'proto'),
//     accountid) are refused at compile time with ErrCloudFunction and a
//     message naming the function and why.
//   - Payloads that are not JSON: fields are Undefined, SELECT * passes the
//     bytes through, encode(*, 'base64') encodes them (binary-payloads).
//
// Actions are decided here and performed by the caller: republish to a local
// topic (a substitution template such as "alarms/${topic(2)}", QoS 0 or 1,
// optional MQTT 5 headers as AWS's republish action takes them), forward into
// a named bridge route (the caller enqueues it durably), and an error action
// that receives AWS's error message when an action fails ([Rule.OnError]).
//
// Errors say where: a [*RuleError] names the rule (index and name) and the
// field (sql, actions[1].republish.topic, ...); inside it a [*SQLError] gives
// the line:column in the statement or template. The config room adds the
// file and line of the rule to make edgegw.yaml:42-style messages.
//
// Where the gateway differs from AWS, it refuses at compile time rather than
// compute something else:
//
//   - Int is 64-bit and Decimal is a double (AWS: 34 digits); an Int result
//     that overflows becomes a Decimal, and a number beyond a double's range
//     (about 1.8E308) is Undefined.
//   - Regular expressions use Go's RE2, not Java's: a literal pattern RE2
//     rejects (back-references, look-around) is a compile error; a pattern
//     computed per message that does not compile gives Undefined, as an
//     invalid pattern does in AWS.
//   - parse_time and time_to_epoch implement the common Joda/java.time
//     pattern letters; a literal pattern with another letter is refused.
//   - A function called with the wrong number of arguments is a compile
//     error (AWS evaluates it to Undefined); a SELECT item that is not a field
//     path needs AS (AWS invents a key); two items with the same output key
//     are refused.
//   - Comments are not part of AWS IoT SQL and are refused.
//
// Life cycle: [Compile] a []Config (decoded by the config room from `rules:`)
// into an immutable [Set]; per message, [Set.Process] evaluates the matching
// rules. A reload compiles a new Set and swaps it. [TrySQL] evaluates one
// statement on one message for `edgegw rule test`.
//
// Evaluation compiles each expression to a closure; the payload is validated
// once per message and a field is read straight from the JSON bytes without
// building the document, so a typical SELECT ... WHERE allocates only its
// output.
//
// Rooms: this package is the engine (rule configs, actions and their
// substitution templates, the error action, Set, TrySQL); the language is
// gateway/rules/sql (parser, evaluator, values and JSON, functions; its
// lexer sql/lex, its JSON reader and MD2 under sql/internal), the date
// patterns of parse_time and time_to_epoch gateway/rules/timefmt,
// and the corpus of AWS examples that the tests of both run
// gateway/rules/sql/sqltest.
//
// The package and its rooms are pure: no I/O, no logging, no goroutines.
// They import only the standard library and each other (the engine the
// language, the language its leaves), nothing else of this module
// (not mochi, badger, prometheus or paho); gateway and cmd may import them,
// never the other way round.
package rules
