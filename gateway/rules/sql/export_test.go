package sql

// OutputMayBeRaw reports whether st's output may be other than JSON: SELECT
// VALUE, or SELECT * alone (a payload that is not JSON passes through).
func OutputMayBeRaw(st *Statement) bool { return st.value || st.hasStar && len(st.items) == 1 }
