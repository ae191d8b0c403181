//! PostgreSQL `pg_catalog` emulation on top of SQLite.
//!
//! This module owns everything a client sees when it introspects the server through the system
//! catalogs: an in-memory database attached to every connection as `pg_catalog`, the catalog
//! tables in it (PostgreSQL 15 column names, declared with PostgreSQL type names so the result
//! typing that maps SQLite declared types to PostgreSQL types keeps working: `OID`, `BOOLEAN`,
//! `"CHAR"`, `SMALLINT`, `INTEGER`, `REAL`, `TEXT`), their contents derived from the `main`
//! schema, and the scalar functions psql, pgjdbc and pgbench call in their catalog queries
//! (`format_type`, `pg_get_indexdef`, `pg_table_is_visible`, `regexp`, ...).
//!
//! Booleans are stored as 0/1 so that `NOT a.attisdropped` and `WHERE c.relhasindex` evaluate as
//! in PostgreSQL; the declared type `BOOLEAN` tells the wire layer to send them as `t`/`f`.
//! Arrays are stored in PostgreSQL's text form (`{a,b}`; `int2vector` as `1 2`) and read by the
//! array helper functions registered here (`pg_any_eq`, `pg_array_elem`, `array_to_string`, ...),
//! which the companion query rewriter (`catalog_rewrite`) targets.
//!
//! User relations get oids derived from a hash of their name, so the same table keeps the same
//! oid across refreshes, connections and restarts, and psql's two-step `\d` (look up the oid, then
//! query by oid) works even if the schema is refreshed in between.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, params};

/// What the server reports about itself through the catalog functions.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Name of the one database `pg_database` lists and `current_database()` returns.
    pub database: String,
    /// Role name for `current_user`, `pg_get_userbyid(10)` and the owner of every object.
    pub user: String,
    /// Version text, e.g. `15.0 (shardgate 0.1.0)`; `version()` embeds it.
    pub server_version: String,
}

/// Schema name the catalog database is attached under.
const SCHEMA: &str = "pg_catalog";

// Oids PostgreSQL 15 itself uses, so clients that hard-code them (pgjdbc, ORMs) keep working.
const NS_PG_CATALOG: i64 = 11;
const NS_PUBLIC: i64 = 2200;
const NS_INFORMATION_SCHEMA: i64 = 13000;
const NS_PG_TOAST: i64 = 99;
const ROLE_SUPERUSER: i64 = 10;
const ROLE_DATABASE_OWNER: i64 = 6171;
const DATABASE_OID: i64 = 5;
const AM_HEAP: i64 = 2;
const AM_BTREE: i64 = 403;
const TABLESPACE_DEFAULT: i64 = 1663;
const COLLATION_DEFAULT: i64 = 100;
/// First oid PostgreSQL hands out to user objects; everything below is "system".
const FIRST_USER_OID: i64 = 16384;

/// One builtin type as `pg_type` describes it (values copied from PostgreSQL 15).
struct BuiltinType {
    oid: i64,
    name: &'static str,
    len: i64,
    byval: bool,
    typtype: &'static str,
    category: &'static str,
    preferred: bool,
    elem: i64,
    array: i64,
    io: [&'static str; 4],
    align: &'static str,
    storage: &'static str,
    collation: i64,
}

#[rustfmt::skip]
const BUILTIN_TYPES: &[BuiltinType] = &[
    BuiltinType { oid: 16, name: "bool", len: 1, byval: true, typtype: "b", category: "B", preferred: true, elem: 0, array: 1000, io: ["boolin", "boolout", "boolrecv", "boolsend"], align: "c", storage: "p", collation: 0 },
    BuiltinType { oid: 17, name: "bytea", len: -1, byval: false, typtype: "b", category: "U", preferred: false, elem: 0, array: 1001, io: ["byteain", "byteaout", "bytearecv", "byteasend"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 18, name: "char", len: 1, byval: true, typtype: "b", category: "Z", preferred: false, elem: 0, array: 1002, io: ["charin", "charout", "charrecv", "charsend"], align: "c", storage: "p", collation: 0 },
    BuiltinType { oid: 19, name: "name", len: 64, byval: false, typtype: "b", category: "S", preferred: false, elem: 18, array: 1003, io: ["namein", "nameout", "namerecv", "namesend"], align: "c", storage: "p", collation: 950 },
    BuiltinType { oid: 20, name: "int8", len: 8, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 1016, io: ["int8in", "int8out", "int8recv", "int8send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 21, name: "int2", len: 2, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 1005, io: ["int2in", "int2out", "int2recv", "int2send"], align: "s", storage: "p", collation: 0 },
    BuiltinType { oid: 22, name: "int2vector", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 21, array: 1006, io: ["int2vectorin", "int2vectorout", "int2vectorrecv", "int2vectorsend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 23, name: "int4", len: 4, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 1007, io: ["int4in", "int4out", "int4recv", "int4send"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 24, name: "regproc", len: 4, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 1008, io: ["regprocin", "regprocout", "regprocrecv", "regprocsend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 25, name: "text", len: -1, byval: false, typtype: "b", category: "S", preferred: true, elem: 0, array: 1009, io: ["textin", "textout", "textrecv", "textsend"], align: "i", storage: "x", collation: 100 },
    BuiltinType { oid: 26, name: "oid", len: 4, byval: true, typtype: "b", category: "N", preferred: true, elem: 0, array: 1028, io: ["oidin", "oidout", "oidrecv", "oidsend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 27, name: "tid", len: 6, byval: false, typtype: "b", category: "U", preferred: false, elem: 0, array: 1010, io: ["tidin", "tidout", "tidrecv", "tidsend"], align: "s", storage: "p", collation: 0 },
    BuiltinType { oid: 28, name: "xid", len: 4, byval: true, typtype: "b", category: "U", preferred: false, elem: 0, array: 1011, io: ["xidin", "xidout", "xidrecv", "xidsend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 29, name: "cid", len: 4, byval: true, typtype: "b", category: "U", preferred: false, elem: 0, array: 1012, io: ["cidin", "cidout", "cidrecv", "cidsend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 30, name: "oidvector", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 26, array: 1013, io: ["oidvectorin", "oidvectorout", "oidvectorrecv", "oidvectorsend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 114, name: "json", len: -1, byval: false, typtype: "b", category: "U", preferred: false, elem: 0, array: 199, io: ["json_in", "json_out", "json_recv", "json_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 142, name: "xml", len: -1, byval: false, typtype: "b", category: "U", preferred: false, elem: 0, array: 143, io: ["xml_in", "xml_out", "xml_recv", "xml_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 194, name: "pg_node_tree", len: -1, byval: false, typtype: "b", category: "Z", preferred: false, elem: 0, array: 0, io: ["pg_node_tree_in", "pg_node_tree_out", "pg_node_tree_recv", "pg_node_tree_send"], align: "i", storage: "x", collation: 100 },
    BuiltinType { oid: 199, name: "_json", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 114, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 600, name: "point", len: 16, byval: false, typtype: "b", category: "G", preferred: false, elem: 701, array: 1017, io: ["point_in", "point_out", "point_recv", "point_send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 650, name: "cidr", len: -1, byval: false, typtype: "b", category: "I", preferred: false, elem: 0, array: 651, io: ["cidr_in", "cidr_out", "cidr_recv", "cidr_send"], align: "i", storage: "m", collation: 0 },
    BuiltinType { oid: 700, name: "float4", len: 4, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 1021, io: ["float4in", "float4out", "float4recv", "float4send"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 701, name: "float8", len: 8, byval: true, typtype: "b", category: "N", preferred: true, elem: 0, array: 1022, io: ["float8in", "float8out", "float8recv", "float8send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 705, name: "unknown", len: -2, byval: false, typtype: "p", category: "X", preferred: false, elem: 0, array: 0, io: ["unknownin", "unknownout", "unknownrecv", "unknownsend"], align: "c", storage: "p", collation: 0 },
    BuiltinType { oid: 790, name: "money", len: 8, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 791, io: ["cash_in", "cash_out", "cash_recv", "cash_send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 829, name: "macaddr", len: 6, byval: false, typtype: "b", category: "U", preferred: false, elem: 0, array: 1040, io: ["macaddr_in", "macaddr_out", "macaddr_recv", "macaddr_send"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 869, name: "inet", len: -1, byval: false, typtype: "b", category: "I", preferred: true, elem: 0, array: 1041, io: ["inet_in", "inet_out", "inet_recv", "inet_send"], align: "i", storage: "m", collation: 0 },
    BuiltinType { oid: 1000, name: "_bool", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 16, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1001, name: "_bytea", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 17, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1002, name: "_char", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 18, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1003, name: "_name", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 19, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 950 },
    BuiltinType { oid: 1005, name: "_int2", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 21, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1007, name: "_int4", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 23, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1009, name: "_text", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 25, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 100 },
    BuiltinType { oid: 1014, name: "_bpchar", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1042, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 100 },
    BuiltinType { oid: 1015, name: "_varchar", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1043, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 100 },
    BuiltinType { oid: 1016, name: "_int8", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 20, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 1021, name: "_float4", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 700, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1022, name: "_float8", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 701, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 1028, name: "_oid", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 26, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1033, name: "aclitem", len: 12, byval: false, typtype: "b", category: "U", preferred: false, elem: 0, array: 1034, io: ["aclitemin", "aclitemout", "-", "-"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 1034, name: "_aclitem", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1033, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1041, name: "_inet", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 869, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1042, name: "bpchar", len: -1, byval: false, typtype: "b", category: "S", preferred: false, elem: 0, array: 1014, io: ["bpcharin", "bpcharout", "bpcharrecv", "bpcharsend"], align: "i", storage: "x", collation: 100 },
    BuiltinType { oid: 1043, name: "varchar", len: -1, byval: false, typtype: "b", category: "S", preferred: false, elem: 0, array: 1015, io: ["varcharin", "varcharout", "varcharrecv", "varcharsend"], align: "i", storage: "x", collation: 100 },
    BuiltinType { oid: 1082, name: "date", len: 4, byval: true, typtype: "b", category: "D", preferred: false, elem: 0, array: 1182, io: ["date_in", "date_out", "date_recv", "date_send"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 1083, name: "time", len: 8, byval: true, typtype: "b", category: "D", preferred: false, elem: 0, array: 1183, io: ["time_in", "time_out", "time_recv", "time_send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 1114, name: "timestamp", len: 8, byval: true, typtype: "b", category: "D", preferred: false, elem: 0, array: 1115, io: ["timestamp_in", "timestamp_out", "timestamp_recv", "timestamp_send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 1115, name: "_timestamp", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1114, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 1182, name: "_date", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1082, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1183, name: "_time", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1083, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 1184, name: "timestamptz", len: 8, byval: true, typtype: "b", category: "D", preferred: true, elem: 0, array: 1185, io: ["timestamptz_in", "timestamptz_out", "timestamptz_recv", "timestamptz_send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 1185, name: "_timestamptz", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1184, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 1186, name: "interval", len: 16, byval: false, typtype: "b", category: "T", preferred: true, elem: 0, array: 1187, io: ["interval_in", "interval_out", "interval_recv", "interval_send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 1187, name: "_interval", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1186, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 1231, name: "_numeric", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1700, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1263, name: "_cstring", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 2275, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1266, name: "timetz", len: 12, byval: false, typtype: "b", category: "D", preferred: false, elem: 0, array: 1270, io: ["timetz_in", "timetz_out", "timetz_recv", "timetz_send"], align: "d", storage: "p", collation: 0 },
    BuiltinType { oid: 1270, name: "_timetz", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 1266, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 1560, name: "bit", len: -1, byval: false, typtype: "b", category: "V", preferred: false, elem: 0, array: 1561, io: ["bit_in", "bit_out", "bit_recv", "bit_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1562, name: "varbit", len: -1, byval: false, typtype: "b", category: "V", preferred: true, elem: 0, array: 1563, io: ["varbit_in", "varbit_out", "varbit_recv", "varbit_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 1700, name: "numeric", len: -1, byval: false, typtype: "b", category: "N", preferred: false, elem: 0, array: 1231, io: ["numeric_in", "numeric_out", "numeric_recv", "numeric_send"], align: "i", storage: "m", collation: 0 },
    BuiltinType { oid: 2202, name: "regprocedure", len: 4, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 2207, io: ["regprocedurein", "regprocedureout", "regprocedurerecv", "regproceduresend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 2205, name: "regclass", len: 4, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 2210, io: ["regclassin", "regclassout", "regclassrecv", "regclasssend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 2206, name: "regtype", len: 4, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 2211, io: ["regtypein", "regtypeout", "regtyperecv", "regtypesend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 2210, name: "_regclass", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 2205, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 2211, name: "_regtype", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 2206, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 2249, name: "record", len: -1, byval: false, typtype: "p", category: "P", preferred: false, elem: 0, array: 2287, io: ["record_in", "record_out", "record_recv", "record_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 2275, name: "cstring", len: -2, byval: false, typtype: "p", category: "P", preferred: false, elem: 0, array: 1263, io: ["cstring_in", "cstring_out", "cstring_recv", "cstring_send"], align: "c", storage: "p", collation: 0 },
    BuiltinType { oid: 2276, name: "any", len: 4, byval: true, typtype: "p", category: "P", preferred: false, elem: 0, array: 0, io: ["any_in", "any_out", "-", "-"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 2277, name: "anyarray", len: -1, byval: false, typtype: "p", category: "P", preferred: false, elem: 0, array: 0, io: ["anyarray_in", "anyarray_out", "anyarray_recv", "anyarray_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 2278, name: "void", len: 4, byval: true, typtype: "p", category: "P", preferred: false, elem: 0, array: 0, io: ["void_in", "void_out", "void_recv", "void_send"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 2279, name: "trigger", len: 4, byval: true, typtype: "p", category: "P", preferred: false, elem: 0, array: 0, io: ["trigger_in", "trigger_out", "-", "-"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 2283, name: "anyelement", len: 4, byval: true, typtype: "p", category: "P", preferred: false, elem: 0, array: 0, io: ["anyelement_in", "anyelement_out", "-", "-"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 2287, name: "_record", len: -1, byval: false, typtype: "p", category: "P", preferred: false, elem: 2249, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "d", storage: "x", collation: 0 },
    BuiltinType { oid: 2950, name: "uuid", len: 16, byval: false, typtype: "b", category: "U", preferred: false, elem: 0, array: 2951, io: ["uuid_in", "uuid_out", "uuid_recv", "uuid_send"], align: "c", storage: "p", collation: 0 },
    BuiltinType { oid: 2951, name: "_uuid", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 2950, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 3802, name: "jsonb", len: -1, byval: false, typtype: "b", category: "U", preferred: false, elem: 0, array: 3807, io: ["jsonb_in", "jsonb_out", "jsonb_recv", "jsonb_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 3807, name: "_jsonb", len: -1, byval: false, typtype: "b", category: "A", preferred: false, elem: 3802, array: 0, io: ["array_in", "array_out", "array_recv", "array_send"], align: "i", storage: "x", collation: 0 },
    BuiltinType { oid: 4089, name: "regnamespace", len: 4, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 4090, io: ["regnamespacein", "regnamespaceout", "regnamespacerecv", "regnamespacesend"], align: "i", storage: "p", collation: 0 },
    BuiltinType { oid: 4096, name: "regrole", len: 4, byval: true, typtype: "b", category: "N", preferred: false, elem: 0, array: 4097, io: ["regrolein", "regroleout", "regrolerecv", "regrolesend"], align: "i", storage: "p", collation: 0 },
];

/// PostgreSQL 15 catalog relations: (name, oid, relkind). Views are emulated by plain tables.
#[rustfmt::skip]
const CATALOG_RELATIONS: &[(&str, i64, &str)] = &[
    ("pg_am", 2601, "r"),
    ("pg_attrdef", 2604, "r"),
    ("pg_attribute", 1249, "r"),
    ("pg_auth_members", 1261, "r"),
    ("pg_authid", 1260, "r"),
    ("pg_cast", 2605, "r"),
    ("pg_class", 1259, "r"),
    ("pg_collation", 3456, "r"),
    ("pg_constraint", 2606, "r"),
    ("pg_conversion", 2607, "r"),
    ("pg_database", 1262, "r"),
    ("pg_default_acl", 826, "r"),
    ("pg_depend", 2608, "r"),
    ("pg_description", 2609, "r"),
    ("pg_enum", 3501, "r"),
    ("pg_event_trigger", 3466, "r"),
    ("pg_extension", 3079, "r"),
    ("pg_foreign_data_wrapper", 2328, "r"),
    ("pg_foreign_server", 1417, "r"),
    ("pg_foreign_table", 3118, "r"),
    ("pg_index", 2610, "r"),
    ("pg_indexes", 12043, "v"),
    ("pg_inherits", 2611, "r"),
    ("pg_init_privs", 3394, "r"),
    ("pg_language", 2612, "r"),
    ("pg_locks", 12073, "v"),
    ("pg_matviews", 12038, "v"),
    ("pg_namespace", 2615, "r"),
    ("pg_opclass", 2616, "r"),
    ("pg_operator", 2617, "r"),
    ("pg_partitioned_table", 3350, "r"),
    ("pg_policy", 3256, "r"),
    ("pg_proc", 1255, "r"),
    ("pg_publication", 6104, "r"),
    ("pg_publication_namespace", 6237, "r"),
    ("pg_publication_rel", 6106, "r"),
    ("pg_range", 3541, "r"),
    ("pg_rewrite", 2618, "r"),
    ("pg_roles", 12000, "v"),
    ("pg_seclabel", 3596, "r"),
    ("pg_sequence", 2224, "r"),
    ("pg_sequences", 12048, "v"),
    ("pg_settings", 12104, "v"),
    ("pg_shdescription", 2396, "r"),
    ("pg_stat_activity", 12222, "v"),
    ("pg_stat_user_tables", 12161, "v"),
    ("pg_statistic_ext", 3381, "r"),
    ("pg_tables", 12033, "v"),
    ("pg_tablespace", 1213, "r"),
    ("pg_timezone_names", 12126, "v"),
    ("pg_trigger", 2620, "r"),
    ("pg_type", 1247, "r"),
    ("pg_user", 12014, "v"),
    ("pg_user_mapping", 1418, "r"),
    ("pg_views", 12028, "v"),
];

/// Table definitions, PostgreSQL 15 column order. Non-null columns default to PostgreSQL's usual
/// "nothing here" value so rows only need to name the columns that carry information.
#[rustfmt::skip]
const CATALOG_DDL: &[&str] = &[
    "CREATE TABLE pg_catalog.pg_am (oid OID PRIMARY KEY, amname TEXT NOT NULL DEFAULT '', amhandler TEXT NOT NULL DEFAULT '-', amtype \"CHAR\" NOT NULL DEFAULT '');",
    "CREATE TABLE pg_catalog.pg_attrdef (oid OID PRIMARY KEY, adrelid OID NOT NULL DEFAULT 0, adnum SMALLINT NOT NULL DEFAULT 0, adbin TEXT);",
    "CREATE TABLE pg_catalog.pg_attribute (attrelid OID NOT NULL DEFAULT 0, attname TEXT NOT NULL DEFAULT '', atttypid OID NOT NULL DEFAULT 0, attstattarget INTEGER NOT NULL DEFAULT 0, attlen SMALLINT NOT NULL DEFAULT 0, attnum SMALLINT NOT NULL DEFAULT 0, attndims INTEGER NOT NULL DEFAULT 0, attcacheoff INTEGER NOT NULL DEFAULT 0, atttypmod INTEGER NOT NULL DEFAULT 0, attbyval BOOLEAN NOT NULL DEFAULT 0, attalign \"CHAR\" NOT NULL DEFAULT '', attstorage \"CHAR\" NOT NULL DEFAULT '', attcompression \"CHAR\" NOT NULL DEFAULT '', attnotnull BOOLEAN NOT NULL DEFAULT 0, atthasdef BOOLEAN NOT NULL DEFAULT 0, atthasmissing BOOLEAN NOT NULL DEFAULT 0, attidentity \"CHAR\" NOT NULL DEFAULT '', attgenerated \"CHAR\" NOT NULL DEFAULT '', attisdropped BOOLEAN NOT NULL DEFAULT 0, attislocal BOOLEAN NOT NULL DEFAULT 0, attinhcount INTEGER NOT NULL DEFAULT 0, attcollation OID NOT NULL DEFAULT 0, attacl TEXT, attoptions TEXT, attfdwoptions TEXT, attmissingval TEXT);",
    "CREATE TABLE pg_catalog.pg_auth_members (roleid OID NOT NULL DEFAULT 0, member OID NOT NULL DEFAULT 0, grantor OID NOT NULL DEFAULT 0, admin_option BOOLEAN NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_authid (oid OID PRIMARY KEY, rolname TEXT NOT NULL DEFAULT '', rolsuper BOOLEAN NOT NULL DEFAULT 0, rolinherit BOOLEAN NOT NULL DEFAULT 0, rolcreaterole BOOLEAN NOT NULL DEFAULT 0, rolcreatedb BOOLEAN NOT NULL DEFAULT 0, rolcanlogin BOOLEAN NOT NULL DEFAULT 0, rolreplication BOOLEAN NOT NULL DEFAULT 0, rolbypassrls BOOLEAN NOT NULL DEFAULT 0, rolconnlimit INTEGER NOT NULL DEFAULT 0, rolpassword TEXT, rolvaliduntil TIMESTAMPTZ);",
    "CREATE TABLE pg_catalog.pg_cast (oid OID PRIMARY KEY, castsource OID NOT NULL DEFAULT 0, casttarget OID NOT NULL DEFAULT 0, castfunc OID NOT NULL DEFAULT 0, castcontext \"CHAR\" NOT NULL DEFAULT '', castmethod \"CHAR\" NOT NULL DEFAULT '');",
    "CREATE TABLE pg_catalog.pg_class (oid OID PRIMARY KEY, relname TEXT NOT NULL DEFAULT '', relnamespace OID NOT NULL DEFAULT 0, reltype OID NOT NULL DEFAULT 0, reloftype OID NOT NULL DEFAULT 0, relowner OID NOT NULL DEFAULT 0, relam OID NOT NULL DEFAULT 0, relfilenode OID NOT NULL DEFAULT 0, reltablespace OID NOT NULL DEFAULT 0, relpages INTEGER NOT NULL DEFAULT 0, reltuples REAL NOT NULL DEFAULT 0, relallvisible INTEGER NOT NULL DEFAULT 0, reltoastrelid OID NOT NULL DEFAULT 0, relhasindex BOOLEAN NOT NULL DEFAULT 0, relisshared BOOLEAN NOT NULL DEFAULT 0, relpersistence \"CHAR\" NOT NULL DEFAULT '', relkind \"CHAR\" NOT NULL DEFAULT '', relnatts SMALLINT NOT NULL DEFAULT 0, relchecks SMALLINT NOT NULL DEFAULT 0, relhasrules BOOLEAN NOT NULL DEFAULT 0, relhastriggers BOOLEAN NOT NULL DEFAULT 0, relhassubclass BOOLEAN NOT NULL DEFAULT 0, relrowsecurity BOOLEAN NOT NULL DEFAULT 0, relforcerowsecurity BOOLEAN NOT NULL DEFAULT 0, relispopulated BOOLEAN NOT NULL DEFAULT 0, relreplident \"CHAR\" NOT NULL DEFAULT '', relispartition BOOLEAN NOT NULL DEFAULT 0, relrewrite OID NOT NULL DEFAULT 0, relfrozenxid INTEGER NOT NULL DEFAULT 0, relminmxid INTEGER NOT NULL DEFAULT 0, relacl TEXT, reloptions TEXT, relpartbound TEXT);",
    "CREATE TABLE pg_catalog.pg_collation (oid OID PRIMARY KEY, collname TEXT NOT NULL DEFAULT '', collnamespace OID NOT NULL DEFAULT 0, collowner OID NOT NULL DEFAULT 0, collprovider \"CHAR\" NOT NULL DEFAULT '', collisdeterministic BOOLEAN NOT NULL DEFAULT 0, collencoding INTEGER NOT NULL DEFAULT 0, collcollate TEXT, collctype TEXT, colliculocale TEXT, collversion TEXT);",
    "CREATE TABLE pg_catalog.pg_constraint (oid OID PRIMARY KEY, conname TEXT NOT NULL DEFAULT '', connamespace OID NOT NULL DEFAULT 0, contype \"CHAR\" NOT NULL DEFAULT '', condeferrable BOOLEAN NOT NULL DEFAULT 0, condeferred BOOLEAN NOT NULL DEFAULT 0, convalidated BOOLEAN NOT NULL DEFAULT 0, conrelid OID NOT NULL DEFAULT 0, contypid OID NOT NULL DEFAULT 0, conindid OID NOT NULL DEFAULT 0, conparentid OID NOT NULL DEFAULT 0, confrelid OID NOT NULL DEFAULT 0, confupdtype \"CHAR\" NOT NULL DEFAULT '', confdeltype \"CHAR\" NOT NULL DEFAULT '', confmatchtype \"CHAR\" NOT NULL DEFAULT '', conislocal BOOLEAN NOT NULL DEFAULT 0, coninhcount INTEGER NOT NULL DEFAULT 0, connoinherit BOOLEAN NOT NULL DEFAULT 0, conkey TEXT, confkey TEXT, conpfeqop TEXT, conppeqop TEXT, conffeqop TEXT, confdelsetcols TEXT, conexclop TEXT, conbin TEXT);",
    "CREATE TABLE pg_catalog.pg_conversion (oid OID PRIMARY KEY, conname TEXT NOT NULL DEFAULT '', connamespace OID NOT NULL DEFAULT 0, conowner OID NOT NULL DEFAULT 0, conforencoding INTEGER NOT NULL DEFAULT 0, contoencoding INTEGER NOT NULL DEFAULT 0, conproc TEXT NOT NULL DEFAULT '-', condefault BOOLEAN NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_database (oid OID PRIMARY KEY, datname TEXT NOT NULL DEFAULT '', datdba OID NOT NULL DEFAULT 0, encoding INTEGER NOT NULL DEFAULT 0, datlocprovider \"CHAR\" NOT NULL DEFAULT '', datistemplate BOOLEAN NOT NULL DEFAULT 0, datallowconn BOOLEAN NOT NULL DEFAULT 0, datconnlimit INTEGER NOT NULL DEFAULT 0, datfrozenxid INTEGER NOT NULL DEFAULT 0, datminmxid INTEGER NOT NULL DEFAULT 0, dattablespace OID NOT NULL DEFAULT 0, datcollate TEXT, datctype TEXT, daticulocale TEXT, datcollversion TEXT, datacl TEXT);",
    "CREATE TABLE pg_catalog.pg_default_acl (oid OID PRIMARY KEY, defaclrole OID NOT NULL DEFAULT 0, defaclnamespace OID NOT NULL DEFAULT 0, defaclobjtype \"CHAR\" NOT NULL DEFAULT '', defaclacl TEXT);",
    "CREATE TABLE pg_catalog.pg_depend (classid OID NOT NULL DEFAULT 0, objid OID NOT NULL DEFAULT 0, objsubid INTEGER NOT NULL DEFAULT 0, refclassid OID NOT NULL DEFAULT 0, refobjid OID NOT NULL DEFAULT 0, refobjsubid INTEGER NOT NULL DEFAULT 0, deptype \"CHAR\" NOT NULL DEFAULT '');",
    "CREATE TABLE pg_catalog.pg_description (objoid OID NOT NULL DEFAULT 0, classoid OID NOT NULL DEFAULT 0, objsubid INTEGER NOT NULL DEFAULT 0, description TEXT);",
    "CREATE TABLE pg_catalog.pg_enum (oid OID PRIMARY KEY, enumtypid OID NOT NULL DEFAULT 0, enumsortorder REAL NOT NULL DEFAULT 0, enumlabel TEXT NOT NULL DEFAULT '');",
    "CREATE TABLE pg_catalog.pg_event_trigger (oid OID PRIMARY KEY, evtname TEXT NOT NULL DEFAULT '', evtevent TEXT NOT NULL DEFAULT '', evtowner OID NOT NULL DEFAULT 0, evtfoid OID NOT NULL DEFAULT 0, evtenabled \"CHAR\" NOT NULL DEFAULT '', evttags TEXT);",
    "CREATE TABLE pg_catalog.pg_extension (oid OID PRIMARY KEY, extname TEXT NOT NULL DEFAULT '', extowner OID NOT NULL DEFAULT 0, extnamespace OID NOT NULL DEFAULT 0, extrelocatable BOOLEAN NOT NULL DEFAULT 0, extversion TEXT, extconfig TEXT, extcondition TEXT);",
    "CREATE TABLE pg_catalog.pg_foreign_data_wrapper (oid OID PRIMARY KEY, fdwname TEXT NOT NULL DEFAULT '', fdwowner OID NOT NULL DEFAULT 0, fdwhandler OID NOT NULL DEFAULT 0, fdwvalidator OID NOT NULL DEFAULT 0, fdwacl TEXT, fdwoptions TEXT);",
    "CREATE TABLE pg_catalog.pg_foreign_server (oid OID PRIMARY KEY, srvname TEXT NOT NULL DEFAULT '', srvowner OID NOT NULL DEFAULT 0, srvfdw OID NOT NULL DEFAULT 0, srvtype TEXT, srvversion TEXT, srvacl TEXT, srvoptions TEXT);",
    "CREATE TABLE pg_catalog.pg_foreign_table (ftrelid OID NOT NULL DEFAULT 0, ftserver OID NOT NULL DEFAULT 0, ftoptions TEXT);",
    "CREATE TABLE pg_catalog.pg_index (indexrelid OID NOT NULL DEFAULT 0, indrelid OID NOT NULL DEFAULT 0, indnatts SMALLINT NOT NULL DEFAULT 0, indnkeyatts SMALLINT NOT NULL DEFAULT 0, indisunique BOOLEAN NOT NULL DEFAULT 0, indnullsnotdistinct BOOLEAN NOT NULL DEFAULT 0, indisprimary BOOLEAN NOT NULL DEFAULT 0, indisexclusion BOOLEAN NOT NULL DEFAULT 0, indimmediate BOOLEAN NOT NULL DEFAULT 0, indisclustered BOOLEAN NOT NULL DEFAULT 0, indisvalid BOOLEAN NOT NULL DEFAULT 0, indcheckxmin BOOLEAN NOT NULL DEFAULT 0, indisready BOOLEAN NOT NULL DEFAULT 0, indislive BOOLEAN NOT NULL DEFAULT 0, indisreplident BOOLEAN NOT NULL DEFAULT 0, indkey TEXT, indcollation TEXT, indclass TEXT, indoption TEXT, indexprs TEXT, indpred TEXT);",
    "CREATE TABLE pg_catalog.pg_indexes (schemaname TEXT NOT NULL DEFAULT '', tablename TEXT NOT NULL DEFAULT '', indexname TEXT NOT NULL DEFAULT '', tablespace TEXT NOT NULL DEFAULT '', indexdef TEXT);",
    "CREATE TABLE pg_catalog.pg_inherits (inhrelid OID NOT NULL DEFAULT 0, inhparent OID NOT NULL DEFAULT 0, inhseqno INTEGER NOT NULL DEFAULT 0, inhdetachpending BOOLEAN NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_init_privs (objoid OID NOT NULL DEFAULT 0, classoid OID NOT NULL DEFAULT 0, objsubid INTEGER NOT NULL DEFAULT 0, privtype \"CHAR\" NOT NULL DEFAULT '', initprivs TEXT);",
    "CREATE TABLE pg_catalog.pg_language (oid OID PRIMARY KEY, lanname TEXT NOT NULL DEFAULT '', lanowner OID NOT NULL DEFAULT 0, lanispl BOOLEAN NOT NULL DEFAULT 0, lanpltrusted BOOLEAN NOT NULL DEFAULT 0, lanplcallfoid OID NOT NULL DEFAULT 0, laninline OID NOT NULL DEFAULT 0, lanvalidator OID NOT NULL DEFAULT 0, lanacl TEXT);",
    "CREATE TABLE pg_catalog.pg_locks (locktype TEXT, database OID NOT NULL DEFAULT 0, relation OID NOT NULL DEFAULT 0, page INTEGER NOT NULL DEFAULT 0, tuple SMALLINT NOT NULL DEFAULT 0, virtualxid TEXT, transactionid INTEGER NOT NULL DEFAULT 0, classid OID NOT NULL DEFAULT 0, objid OID NOT NULL DEFAULT 0, objsubid SMALLINT NOT NULL DEFAULT 0, virtualtransaction TEXT, pid INTEGER NOT NULL DEFAULT 0, mode TEXT, granted BOOLEAN NOT NULL DEFAULT 0, fastpath BOOLEAN NOT NULL DEFAULT 0, waitstart TIMESTAMPTZ);",
    "CREATE TABLE pg_catalog.pg_matviews (schemaname TEXT NOT NULL DEFAULT '', matviewname TEXT NOT NULL DEFAULT '', matviewowner TEXT NOT NULL DEFAULT '', tablespace TEXT NOT NULL DEFAULT '', hasindexes BOOLEAN NOT NULL DEFAULT 0, ispopulated BOOLEAN NOT NULL DEFAULT 0, definition TEXT);",
    "CREATE TABLE pg_catalog.pg_namespace (oid OID PRIMARY KEY, nspname TEXT NOT NULL DEFAULT '', nspowner OID NOT NULL DEFAULT 0, nspacl TEXT);",
    "CREATE TABLE pg_catalog.pg_opclass (oid OID PRIMARY KEY, opcmethod OID NOT NULL DEFAULT 0, opcname TEXT NOT NULL DEFAULT '', opcnamespace OID NOT NULL DEFAULT 0, opcowner OID NOT NULL DEFAULT 0, opcfamily OID NOT NULL DEFAULT 0, opcintype OID NOT NULL DEFAULT 0, opcdefault BOOLEAN NOT NULL DEFAULT 0, opckeytype OID NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_operator (oid OID PRIMARY KEY, oprname TEXT NOT NULL DEFAULT '', oprnamespace OID NOT NULL DEFAULT 0, oprowner OID NOT NULL DEFAULT 0, oprkind \"CHAR\" NOT NULL DEFAULT '', oprcanmerge BOOLEAN NOT NULL DEFAULT 0, oprcanhash BOOLEAN NOT NULL DEFAULT 0, oprleft OID NOT NULL DEFAULT 0, oprright OID NOT NULL DEFAULT 0, oprresult OID NOT NULL DEFAULT 0, oprcom OID NOT NULL DEFAULT 0, oprnegate OID NOT NULL DEFAULT 0, oprcode TEXT NOT NULL DEFAULT '-', oprrest TEXT NOT NULL DEFAULT '-', oprjoin TEXT NOT NULL DEFAULT '-');",
    "CREATE TABLE pg_catalog.pg_partitioned_table (partrelid OID NOT NULL DEFAULT 0, partstrat \"CHAR\" NOT NULL DEFAULT '', partnatts SMALLINT NOT NULL DEFAULT 0, partdefid OID NOT NULL DEFAULT 0, partattrs TEXT, partclass TEXT, partcollation TEXT, partexprs TEXT);",
    "CREATE TABLE pg_catalog.pg_policy (oid OID PRIMARY KEY, polname TEXT NOT NULL DEFAULT '', polrelid OID NOT NULL DEFAULT 0, polcmd \"CHAR\" NOT NULL DEFAULT '', polpermissive BOOLEAN NOT NULL DEFAULT 0, polroles TEXT, polqual TEXT, polwithcheck TEXT);",
    "CREATE TABLE pg_catalog.pg_proc (oid OID PRIMARY KEY, proname TEXT NOT NULL DEFAULT '', pronamespace OID NOT NULL DEFAULT 0, proowner OID NOT NULL DEFAULT 0, prolang OID NOT NULL DEFAULT 0, procost REAL NOT NULL DEFAULT 0, prorows REAL NOT NULL DEFAULT 0, provariadic OID NOT NULL DEFAULT 0, prosupport TEXT NOT NULL DEFAULT '-', prokind \"CHAR\" NOT NULL DEFAULT '', prosecdef BOOLEAN NOT NULL DEFAULT 0, proleakproof BOOLEAN NOT NULL DEFAULT 0, proisstrict BOOLEAN NOT NULL DEFAULT 0, proretset BOOLEAN NOT NULL DEFAULT 0, provolatile \"CHAR\" NOT NULL DEFAULT '', proparallel \"CHAR\" NOT NULL DEFAULT '', pronargs SMALLINT NOT NULL DEFAULT 0, pronargdefaults SMALLINT NOT NULL DEFAULT 0, prorettype OID NOT NULL DEFAULT 0, proargtypes TEXT, proallargtypes TEXT, proargmodes TEXT, proargnames TEXT, proargdefaults TEXT, protrftypes TEXT, prosrc TEXT, probin TEXT, prosqlbody TEXT, proconfig TEXT, proacl TEXT);",
    "CREATE TABLE pg_catalog.pg_publication (oid OID PRIMARY KEY, pubname TEXT NOT NULL DEFAULT '', pubowner OID NOT NULL DEFAULT 0, puballtables BOOLEAN NOT NULL DEFAULT 0, pubinsert BOOLEAN NOT NULL DEFAULT 0, pubupdate BOOLEAN NOT NULL DEFAULT 0, pubdelete BOOLEAN NOT NULL DEFAULT 0, pubtruncate BOOLEAN NOT NULL DEFAULT 0, pubviaroot BOOLEAN NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_publication_namespace (oid OID PRIMARY KEY, pnpubid OID NOT NULL DEFAULT 0, pnnspid OID NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_publication_rel (oid OID PRIMARY KEY, prpubid OID NOT NULL DEFAULT 0, prrelid OID NOT NULL DEFAULT 0, prqual TEXT, prattrs TEXT);",
    "CREATE TABLE pg_catalog.pg_range (rngtypid OID NOT NULL DEFAULT 0, rngsubtype OID NOT NULL DEFAULT 0, rngmultitypid OID NOT NULL DEFAULT 0, rngcollation OID NOT NULL DEFAULT 0, rngsubopc OID NOT NULL DEFAULT 0, rngcanonical TEXT NOT NULL DEFAULT '-', rngsubdiff TEXT NOT NULL DEFAULT '-');",
    "CREATE TABLE pg_catalog.pg_rewrite (oid OID PRIMARY KEY, rulename TEXT NOT NULL DEFAULT '', ev_class OID NOT NULL DEFAULT 0, ev_type \"CHAR\" NOT NULL DEFAULT '', ev_enabled \"CHAR\" NOT NULL DEFAULT '', is_instead BOOLEAN NOT NULL DEFAULT 0, ev_qual TEXT, ev_action TEXT);",
    "CREATE TABLE pg_catalog.pg_roles (rolname TEXT NOT NULL DEFAULT '', rolsuper BOOLEAN NOT NULL DEFAULT 0, rolinherit BOOLEAN NOT NULL DEFAULT 0, rolcreaterole BOOLEAN NOT NULL DEFAULT 0, rolcreatedb BOOLEAN NOT NULL DEFAULT 0, rolcanlogin BOOLEAN NOT NULL DEFAULT 0, rolreplication BOOLEAN NOT NULL DEFAULT 0, rolconnlimit INTEGER NOT NULL DEFAULT 0, rolpassword TEXT, rolvaliduntil TIMESTAMPTZ, rolbypassrls BOOLEAN NOT NULL DEFAULT 0, rolconfig TEXT, oid OID PRIMARY KEY);",
    "CREATE TABLE pg_catalog.pg_seclabel (objoid OID NOT NULL DEFAULT 0, classoid OID NOT NULL DEFAULT 0, objsubid INTEGER NOT NULL DEFAULT 0, provider TEXT, label TEXT);",
    "CREATE TABLE pg_catalog.pg_sequence (seqrelid OID NOT NULL DEFAULT 0, seqtypid OID NOT NULL DEFAULT 0, seqstart BIGINT NOT NULL DEFAULT 0, seqincrement BIGINT NOT NULL DEFAULT 0, seqmax BIGINT NOT NULL DEFAULT 0, seqmin BIGINT NOT NULL DEFAULT 0, seqcache BIGINT NOT NULL DEFAULT 0, seqcycle BOOLEAN NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_sequences (schemaname TEXT NOT NULL DEFAULT '', sequencename TEXT NOT NULL DEFAULT '', sequenceowner TEXT NOT NULL DEFAULT '', data_type TEXT, start_value BIGINT NOT NULL DEFAULT 0, min_value BIGINT NOT NULL DEFAULT 0, max_value BIGINT NOT NULL DEFAULT 0, increment_by BIGINT NOT NULL DEFAULT 0, cycle BOOLEAN NOT NULL DEFAULT 0, cache_size BIGINT NOT NULL DEFAULT 0, last_value BIGINT NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_settings (name TEXT, setting TEXT, unit TEXT, category TEXT, short_desc TEXT, extra_desc TEXT, context TEXT, vartype TEXT, source TEXT, min_val TEXT, max_val TEXT, enumvals TEXT, boot_val TEXT, reset_val TEXT, sourcefile TEXT, sourceline INTEGER NOT NULL DEFAULT 0, pending_restart BOOLEAN NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_shdescription (objoid OID NOT NULL DEFAULT 0, classoid OID NOT NULL DEFAULT 0, description TEXT);",
    "CREATE TABLE pg_catalog.pg_stat_activity (datid OID NOT NULL DEFAULT 0, datname TEXT NOT NULL DEFAULT '', pid INTEGER NOT NULL DEFAULT 0, leader_pid INTEGER NOT NULL DEFAULT 0, usesysid OID NOT NULL DEFAULT 0, usename TEXT NOT NULL DEFAULT '', application_name TEXT, client_addr TEXT, client_hostname TEXT, client_port INTEGER NOT NULL DEFAULT 0, backend_start TIMESTAMPTZ, xact_start TIMESTAMPTZ, query_start TIMESTAMPTZ, state_change TIMESTAMPTZ, wait_event_type TEXT, wait_event TEXT, state TEXT, backend_xid INTEGER NOT NULL DEFAULT 0, backend_xmin INTEGER NOT NULL DEFAULT 0, query_id BIGINT NOT NULL DEFAULT 0, query TEXT, backend_type TEXT);",
    "CREATE TABLE pg_catalog.pg_stat_user_tables (relid OID NOT NULL DEFAULT 0, schemaname TEXT NOT NULL DEFAULT '', relname TEXT NOT NULL DEFAULT '', seq_scan BIGINT NOT NULL DEFAULT 0, seq_tup_read BIGINT NOT NULL DEFAULT 0, idx_scan BIGINT NOT NULL DEFAULT 0, idx_tup_fetch BIGINT NOT NULL DEFAULT 0, n_tup_ins BIGINT NOT NULL DEFAULT 0, n_tup_upd BIGINT NOT NULL DEFAULT 0, n_tup_del BIGINT NOT NULL DEFAULT 0, n_tup_hot_upd BIGINT NOT NULL DEFAULT 0, n_live_tup BIGINT NOT NULL DEFAULT 0, n_dead_tup BIGINT NOT NULL DEFAULT 0, n_mod_since_analyze BIGINT NOT NULL DEFAULT 0, n_ins_since_vacuum BIGINT NOT NULL DEFAULT 0, last_vacuum TIMESTAMPTZ, last_autovacuum TIMESTAMPTZ, last_analyze TIMESTAMPTZ, last_autoanalyze TIMESTAMPTZ, vacuum_count BIGINT NOT NULL DEFAULT 0, autovacuum_count BIGINT NOT NULL DEFAULT 0, analyze_count BIGINT NOT NULL DEFAULT 0, autoanalyze_count BIGINT NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_statistic_ext (oid OID PRIMARY KEY, stxrelid OID NOT NULL DEFAULT 0, stxname TEXT NOT NULL DEFAULT '', stxnamespace OID NOT NULL DEFAULT 0, stxowner OID NOT NULL DEFAULT 0, stxstattarget INTEGER NOT NULL DEFAULT 0, stxkeys TEXT, stxkind TEXT, stxexprs TEXT);",
    "CREATE TABLE pg_catalog.pg_tables (schemaname TEXT NOT NULL DEFAULT '', tablename TEXT NOT NULL DEFAULT '', tableowner TEXT NOT NULL DEFAULT '', tablespace TEXT NOT NULL DEFAULT '', hasindexes BOOLEAN NOT NULL DEFAULT 0, hasrules BOOLEAN NOT NULL DEFAULT 0, hastriggers BOOLEAN NOT NULL DEFAULT 0, rowsecurity BOOLEAN NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_tablespace (oid OID PRIMARY KEY, spcname TEXT NOT NULL DEFAULT '', spcowner OID NOT NULL DEFAULT 0, spcacl TEXT, spcoptions TEXT);",
    "CREATE TABLE pg_catalog.pg_timezone_names (name TEXT, abbrev TEXT, utc_offset TEXT, is_dst BOOLEAN NOT NULL DEFAULT 0);",
    "CREATE TABLE pg_catalog.pg_trigger (oid OID PRIMARY KEY, tgrelid OID NOT NULL DEFAULT 0, tgparentid OID NOT NULL DEFAULT 0, tgname TEXT NOT NULL DEFAULT '', tgfoid OID NOT NULL DEFAULT 0, tgtype SMALLINT NOT NULL DEFAULT 0, tgenabled \"CHAR\" NOT NULL DEFAULT '', tgisinternal BOOLEAN NOT NULL DEFAULT 0, tgconstrrelid OID NOT NULL DEFAULT 0, tgconstrindid OID NOT NULL DEFAULT 0, tgconstraint OID NOT NULL DEFAULT 0, tgdeferrable BOOLEAN NOT NULL DEFAULT 0, tginitdeferred BOOLEAN NOT NULL DEFAULT 0, tgnargs SMALLINT NOT NULL DEFAULT 0, tgattr TEXT, tgargs BYTEA, tgqual TEXT, tgoldtable TEXT NOT NULL DEFAULT '', tgnewtable TEXT NOT NULL DEFAULT '');",
    "CREATE TABLE pg_catalog.pg_type (oid OID PRIMARY KEY, typname TEXT NOT NULL DEFAULT '', typnamespace OID NOT NULL DEFAULT 0, typowner OID NOT NULL DEFAULT 0, typlen SMALLINT NOT NULL DEFAULT 0, typbyval BOOLEAN NOT NULL DEFAULT 0, typtype \"CHAR\" NOT NULL DEFAULT '', typcategory \"CHAR\" NOT NULL DEFAULT '', typispreferred BOOLEAN NOT NULL DEFAULT 0, typisdefined BOOLEAN NOT NULL DEFAULT 0, typdelim \"CHAR\" NOT NULL DEFAULT '', typrelid OID NOT NULL DEFAULT 0, typsubscript TEXT NOT NULL DEFAULT '-', typelem OID NOT NULL DEFAULT 0, typarray OID NOT NULL DEFAULT 0, typinput TEXT NOT NULL DEFAULT '-', typoutput TEXT NOT NULL DEFAULT '-', typreceive TEXT NOT NULL DEFAULT '-', typsend TEXT NOT NULL DEFAULT '-', typmodin TEXT NOT NULL DEFAULT '-', typmodout TEXT NOT NULL DEFAULT '-', typanalyze TEXT NOT NULL DEFAULT '-', typalign \"CHAR\" NOT NULL DEFAULT '', typstorage \"CHAR\" NOT NULL DEFAULT '', typnotnull BOOLEAN NOT NULL DEFAULT 0, typbasetype OID NOT NULL DEFAULT 0, typtypmod INTEGER NOT NULL DEFAULT 0, typndims INTEGER NOT NULL DEFAULT 0, typcollation OID NOT NULL DEFAULT 0, typdefaultbin TEXT, typdefault TEXT, typacl TEXT);",
    "CREATE TABLE pg_catalog.pg_user (usename TEXT NOT NULL DEFAULT '', usesysid OID NOT NULL DEFAULT 0, usecreatedb BOOLEAN NOT NULL DEFAULT 0, usesuper BOOLEAN NOT NULL DEFAULT 0, userepl BOOLEAN NOT NULL DEFAULT 0, usebypassrls BOOLEAN NOT NULL DEFAULT 0, passwd TEXT, valuntil TIMESTAMPTZ, useconfig TEXT);",
    "CREATE TABLE pg_catalog.pg_user_mapping (oid OID PRIMARY KEY, umuser OID NOT NULL DEFAULT 0, umserver OID NOT NULL DEFAULT 0, umoptions TEXT);",
    "CREATE TABLE pg_catalog.pg_views (schemaname TEXT NOT NULL DEFAULT '', viewname TEXT NOT NULL DEFAULT '', viewowner TEXT NOT NULL DEFAULT '', definition TEXT);",
    "CREATE TABLE pg_catalog._shardgate_state (schema_version INTEGER NOT NULL);",
    "CREATE TABLE pg_catalog._shardgate_indexdef (oid INTEGER PRIMARY KEY, relname TEXT NOT NULL, def TEXT NOT NULL, def_pretty TEXT NOT NULL, columns TEXT NOT NULL);",
    "CREATE TABLE pg_catalog._shardgate_constraintdef (oid INTEGER PRIMARY KEY, def TEXT NOT NULL);",
];

/// Attaches an in-memory database named `pg_catalog` to `conn`, creates its tables, registers
/// the scalar functions psql/pgjdbc call. Called once per new connection.
pub fn install(conn: &Connection, info: &ServerInfo) -> rusqlite::Result<()> {
    let attached: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_database_list WHERE name = ?1",
            [SCHEMA],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if !attached {
        conn.execute("ATTACH DATABASE ':memory:' AS pg_catalog", [])?;
        for ddl in CATALOG_DDL {
            conn.execute(ddl, [])?;
        }
        insert_static_rows(conn, info)?;
    }
    register_functions(conn, info)?;
    // psql's publication footer and pgbench use generate_series; re-registering only replaces
    // the module, so it does not matter whether the caller registered it already.
    rusqlite::vtab::series::load_module(conn)?;
    Ok(())
}

/// Rebuilds the pg_catalog tables from the `main` schema. Must be a cheap no-op when
/// `PRAGMA main.schema_version` has not changed since the last refresh on this connection.
pub fn refresh(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA main.schema_version", [], |r| r.get(0))?;
    let seen: Option<i64> = conn
        .query_row(
            "SELECT schema_version FROM pg_catalog._shardgate_state",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if seen == Some(version) {
        return Ok(());
    }
    // A savepoint keeps the rebuild atomic and works whether or not the caller is inside a
    // transaction; it only touches the in-memory catalog, never `main`.
    conn.execute_batch("SAVEPOINT _shardgate_catalog_refresh")?;
    let result = rebuild(conn, version);
    match result {
        Ok(()) => conn.execute_batch("RELEASE _shardgate_catalog_refresh"),
        Err(e) => {
            let _ = conn.execute_batch(
                "ROLLBACK TO _shardgate_catalog_refresh; RELEASE _shardgate_catalog_refresh",
            );
            Err(e)
        }
    }
}

/// Inserts one row naming only the columns that differ from the table's defaults.
fn insert(conn: &Connection, table: &str, cols: &[(&str, Value)]) -> rusqlite::Result<()> {
    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO pg_catalog.{table} ({}) VALUES ({})",
        names.join(", "),
        marks.join(", ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.execute(rusqlite::params_from_iter(cols.iter().map(|(_, v)| v)))?;
    Ok(())
}

fn int(v: i64) -> Value {
    Value::Integer(v)
}

fn txt(v: &str) -> Value {
    Value::Text(v.to_string())
}

fn boolean(v: bool) -> Value {
    Value::Integer(i64::from(v))
}

fn opt_txt(v: Option<&str>) -> Value {
    v.map_or(Value::Null, txt)
}

fn insert_static_rows(conn: &Connection, info: &ServerInfo) -> rusqlite::Result<()> {
    for (oid, name, owner) in [
        (NS_PG_CATALOG, "pg_catalog", ROLE_SUPERUSER),
        (NS_PUBLIC, "public", ROLE_DATABASE_OWNER),
        (NS_INFORMATION_SCHEMA, "information_schema", ROLE_SUPERUSER),
        (NS_PG_TOAST, "pg_toast", ROLE_SUPERUSER),
    ] {
        insert(
            conn,
            "pg_namespace",
            &[
                ("oid", int(oid)),
                ("nspname", txt(name)),
                ("nspowner", int(owner)),
            ],
        )?;
    }
    for t in BUILTIN_TYPES {
        insert(
            conn,
            "pg_type",
            &[
                ("oid", int(t.oid)),
                ("typname", txt(t.name)),
                ("typnamespace", int(NS_PG_CATALOG)),
                ("typowner", int(ROLE_SUPERUSER)),
                ("typlen", int(t.len)),
                ("typbyval", boolean(t.byval)),
                ("typtype", txt(t.typtype)),
                ("typcategory", txt(t.category)),
                ("typispreferred", boolean(t.preferred)),
                ("typisdefined", boolean(true)),
                ("typdelim", txt(",")),
                ("typelem", int(t.elem)),
                ("typarray", int(t.array)),
                ("typinput", txt(t.io[0])),
                ("typoutput", txt(t.io[1])),
                ("typreceive", txt(t.io[2])),
                ("typsend", txt(t.io[3])),
                ("typalign", txt(t.align)),
                ("typstorage", txt(t.storage)),
                ("typtypmod", int(-1)),
                ("typcollation", int(t.collation)),
            ],
        )?;
    }
    for (oid, name, kind) in [(AM_HEAP, "heap", "t"), (AM_BTREE, "btree", "i")] {
        let handler = if kind == "t" {
            "heap_tableam_handler"
        } else {
            "bthandler"
        };
        insert(
            conn,
            "pg_am",
            &[
                ("oid", int(oid)),
                ("amname", txt(name)),
                ("amhandler", txt(handler)),
                ("amtype", txt(kind)),
            ],
        )?;
    }
    insert(
        conn,
        "pg_database",
        &[
            ("oid", int(DATABASE_OID)),
            ("datname", txt(&info.database)),
            ("datdba", int(ROLE_SUPERUSER)),
            ("encoding", int(6)),
            ("datlocprovider", txt("c")),
            ("datallowconn", boolean(true)),
            ("datconnlimit", int(-1)),
            ("dattablespace", int(TABLESPACE_DEFAULT)),
            ("datcollate", txt("C.UTF-8")),
            ("datctype", txt("C.UTF-8")),
        ],
    )?;
    let role_flags = [
        ("rolsuper", boolean(true)),
        ("rolinherit", boolean(true)),
        ("rolcreaterole", boolean(true)),
        ("rolcreatedb", boolean(true)),
        ("rolcanlogin", boolean(true)),
        ("rolreplication", boolean(true)),
        ("rolbypassrls", boolean(true)),
        ("rolconnlimit", int(-1)),
    ];
    for table in ["pg_authid", "pg_roles"] {
        let mut cols = vec![("oid", int(ROLE_SUPERUSER)), ("rolname", txt(&info.user))];
        cols.extend(role_flags.iter().cloned());
        if table == "pg_roles" {
            cols.push(("rolpassword", txt("********")));
        }
        insert(conn, table, &cols)?;
        insert(
            conn,
            table,
            &[
                ("oid", int(ROLE_DATABASE_OWNER)),
                ("rolname", txt("pg_database_owner")),
                ("rolinherit", boolean(true)),
                ("rolconnlimit", int(-1)),
            ],
        )?;
    }
    insert(
        conn,
        "pg_user",
        &[
            ("usename", txt(&info.user)),
            ("usesysid", int(ROLE_SUPERUSER)),
            ("usecreatedb", boolean(true)),
            ("usesuper", boolean(true)),
            ("userepl", boolean(true)),
            ("usebypassrls", boolean(true)),
            ("passwd", txt("********")),
        ],
    )?;
    for (oid, name, provider, collate) in [
        (COLLATION_DEFAULT, "default", "d", None),
        (950, "C", "c", Some("C")),
        (951, "POSIX", "c", Some("POSIX")),
    ] {
        insert(
            conn,
            "pg_collation",
            &[
                ("oid", int(oid)),
                ("collname", txt(name)),
                ("collnamespace", int(NS_PG_CATALOG)),
                ("collowner", int(ROLE_SUPERUSER)),
                ("collprovider", txt(provider)),
                ("collisdeterministic", boolean(true)),
                ("collencoding", int(-1)),
                ("collcollate", opt_txt(collate)),
                ("collctype", opt_txt(collate)),
            ],
        )?;
    }
    for (oid, name) in [(TABLESPACE_DEFAULT, "pg_default"), (1664, "pg_global")] {
        insert(
            conn,
            "pg_tablespace",
            &[
                ("oid", int(oid)),
                ("spcname", txt(name)),
                ("spcowner", int(ROLE_SUPERUSER)),
            ],
        )?;
    }
    let version_num = server_version_num(&info.server_version);
    for (name, setting) in [
        ("server_version", info.server_version.as_str()),
        ("server_version_num", version_num.as_str()),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("IntervalStyle", "postgres"),
        ("TimeZone", "UTC"),
        ("standard_conforming_strings", "on"),
        ("integer_datetimes", "on"),
        ("max_identifier_length", "63"),
        ("search_path", "\"$user\", public"),
        ("default_transaction_isolation", "serializable"),
        ("transaction_isolation", "serializable"),
        ("max_connections", "100"),
        ("block_size", "4096"),
        ("lc_collate", "C.UTF-8"),
        ("lc_ctype", "C.UTF-8"),
        ("is_superuser", "on"),
    ] {
        insert(
            conn,
            "pg_settings",
            &[
                ("name", txt(name)),
                ("setting", txt(setting)),
                ("context", txt("user")),
                ("vartype", txt("string")),
                ("source", txt("default")),
                ("boot_val", txt(setting)),
                ("reset_val", txt(setting)),
                ("pending_restart", boolean(false)),
            ],
        )?;
    }
    for (name, oid, kind) in CATALOG_RELATIONS {
        insert(
            conn,
            "pg_class",
            &[
                ("oid", int(*oid)),
                ("relname", txt(name)),
                ("relnamespace", int(NS_PG_CATALOG)),
                ("relowner", int(ROLE_SUPERUSER)),
                ("relam", int(if *kind == "r" { AM_HEAP } else { 0 })),
                ("relfilenode", int(*oid)),
                ("reltuples", int(-1)),
                ("relpersistence", txt("p")),
                ("relkind", txt(kind)),
                ("relispopulated", boolean(true)),
                ("relreplident", txt("n")),
            ],
        )?;
    }
    Ok(())
}

/// `15.0 (shardgate 0.1.0)` → `150000`, the form clients compare numerically.
fn server_version_num(version: &str) -> String {
    let numeric: String = version
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').map(|p| p.parse::<i64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major * 10000 + minor).to_string()
}

/// A column of a user relation, with the PostgreSQL view of its type and default.
struct Column {
    name: String,
    typid: i64,
    typmod: i64,
    notnull: bool,
    default: Option<String>,
    default_oid: i64,
    generated: bool,
}

/// An index as PostgreSQL would name and describe it.
struct Index {
    name: String,
    oid: i64,
    /// Oid of the backing constraint, if any (see `contype`).
    con_oid: i64,
    unique: bool,
    primary: bool,
    /// Constraint type when the index backs a constraint: `p` or `u`.
    contype: Option<&'static str>,
    /// (column name or expression text, attnum or 0 for an expression, descending)
    keys: Vec<(String, i64, bool)>,
    predicate: Option<String>,
}

struct Relation {
    name: String,
    oid: i64,
    kind: &'static str,
    sql: Option<String>,
    columns: Vec<Column>,
    indexes: Vec<Index>,
}

/// Hands out oids from name hashes; collisions move to the next free oid, so oids only change
/// when a colliding name appears, which is rare enough to keep them stable in practice.
struct OidAllocator {
    used: HashSet<i64>,
}

impl OidAllocator {
    fn new() -> Self {
        let mut used: HashSet<i64> = CATALOG_RELATIONS.iter().map(|r| r.1).collect();
        used.extend(BUILTIN_TYPES.iter().map(|t| t.oid));
        OidAllocator { used }
    }

    fn alloc(&mut self, key: &str) -> i64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.to_lowercase().bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let span = (i32::MAX as u64) - (FIRST_USER_OID as u64);
        let mut oid = FIRST_USER_OID + (hash % span) as i64;
        while !self.used.insert(oid) {
            oid = if oid >= i64::from(i32::MAX) - 1 {
                FIRST_USER_OID
            } else {
                oid + 1
            };
        }
        oid
    }
}

fn rebuild(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    conn.execute_batch(
        "DELETE FROM pg_catalog.pg_class WHERE oid >= 16384;
         DELETE FROM pg_catalog.pg_attribute WHERE attrelid >= 16384;
         DELETE FROM pg_catalog.pg_attrdef;
         DELETE FROM pg_catalog.pg_index;
         DELETE FROM pg_catalog.pg_constraint;
         DELETE FROM pg_catalog.pg_tables;
         DELETE FROM pg_catalog.pg_views;
         DELETE FROM pg_catalog.pg_indexes;
         DELETE FROM pg_catalog.pg_stat_user_tables;
         DELETE FROM pg_catalog._shardgate_indexdef;
         DELETE FROM pg_catalog._shardgate_constraintdef;
         DELETE FROM pg_catalog._shardgate_state;",
    )?;
    conn.execute(
        "INSERT INTO pg_catalog._shardgate_state (schema_version) VALUES (?1)",
        [version],
    )?;
    let owner: String = conn
        .query_row(
            "SELECT rolname FROM pg_catalog.pg_authid WHERE oid = ?1",
            [ROLE_SUPERUSER],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default();
    let relations = read_relations(conn)?;
    for rel in &relations {
        write_relation(conn, rel, &owner)?;
    }
    Ok(())
}

/// PostgreSQL types the server recorded at CREATE TABLE time, keyed by lower-cased
/// (table, column); SQLite names are case-insensitive, so lookups must be too.
fn declared_types(conn: &Connection) -> rusqlite::Result<HashMap<(String, String), (i64, i64)>> {
    let mut out = HashMap::new();
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM main.sqlite_schema WHERE type = 'table' AND name = '_shardgate_columns'",
        [],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(out);
    }
    let mut stmt = conn.prepare(
        "SELECT table_name, column_name, type_oid, type_mod FROM main._shardgate_columns",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (t, c, oid, typmod) = row?;
        out.insert((t.to_lowercase(), c.to_lowercase()), (oid, typmod));
    }
    Ok(out)
}

fn read_relations(conn: &Connection) -> rusqlite::Result<Vec<Relation>> {
    let declared = declared_types(conn)?;
    let mut oids = OidAllocator::new();
    let mut stmt = conn.prepare(
        "SELECT type, name, sql FROM main.sqlite_schema
         WHERE type IN ('table', 'view')
           AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           AND name NOT LIKE '\\_shardgate\\_%' ESCAPE '\\'
         ORDER BY name",
    )?;
    let listed: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut relations = Vec::new();
    for (kind, name, sql) in listed {
        let oid = oids.alloc(&name);
        let mut columns = read_columns(conn, &name, &declared)?;
        for col in columns.iter_mut().filter(|c| c.default.is_some()) {
            col.default_oid = oids.alloc(&format!("default:{name}.{}", col.name));
        }
        relations.push(Relation {
            oid,
            kind: if kind == "view" { "v" } else { "r" },
            sql,
            columns,
            indexes: Vec::new(),
            name,
        });
    }
    // Index oids are handed out after all relation oids so that adding an index never moves a
    // table's oid.
    for rel in relations.iter_mut().filter(|r| r.kind == "r") {
        rel.indexes = read_indexes(conn, rel, &mut oids)?;
    }
    Ok(relations)
}

fn read_columns(
    conn: &Connection,
    table: &str,
    declared: &HashMap<(String, String), (i64, i64)>,
) -> rusqlite::Result<Vec<Column>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden
         FROM pragma_table_xinfo(?1, 'main') ORDER BY cid",
    )?;
    let rows = stmt.query_map([table], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, decl, notnull, default, pk, hidden) = row?;
        // hidden = 1 marks virtual-table hidden columns, which PostgreSQL clients never see.
        if hidden == 1 {
            continue;
        }
        let (typid, typmod) = declared
            .get(&(table.to_lowercase(), name.to_lowercase()))
            .copied()
            .unwrap_or_else(|| type_from_decl(decl.as_deref().unwrap_or("")));
        let default = default.map(|d| render_default(&d, typid));
        out.push(Column {
            name,
            typid,
            typmod,
            // PostgreSQL forces primary-key columns NOT NULL; SQLite only does for rowid aliases.
            notnull: notnull || pk > 0,
            default,
            default_oid: 0,
            generated: hidden >= 2,
        });
    }
    Ok(out)
}

fn read_indexes(
    conn: &Connection,
    rel: &Relation,
    oids: &mut OidAllocator,
) -> rusqlite::Result<Vec<Index>> {
    let table = rel.name.as_str();
    let mut list = conn.prepare(
        "SELECT l.name, l.\"unique\", l.origin, l.partial, s.sql
         FROM pragma_index_list(?1, 'main') AS l
         LEFT JOIN main.sqlite_schema AS s ON s.type = 'index' AND s.name = l.name
         ORDER BY l.name",
    )?;
    let listed: Vec<(String, bool, String, bool, Option<String>)> = list
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut info = conn.prepare(
        "SELECT cid, name, \"desc\" FROM pragma_index_xinfo(?1, 'main') WHERE key = 1 ORDER BY seqno",
    )?;
    let pkey_name = format!("{table}_pkey");
    let mut out = Vec::new();
    for (sqlite_name, unique, origin, partial, sql) in listed {
        let raw: Vec<(i64, Option<String>, bool)> = info
            .query_map([&sqlite_name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let expressions = sql.as_deref().and_then(index_expressions);
        let mut keys = Vec::new();
        for (pos, (cid, name, desc)) in raw.into_iter().enumerate() {
            match name {
                Some(n) if cid >= 0 => keys.push((n, cid + 1, desc)),
                _ => {
                    let text = expressions
                        .as_ref()
                        .and_then(|e| e.get(pos).cloned())
                        .unwrap_or_else(|| "?".to_string());
                    keys.push((text, 0, desc));
                }
            }
        }
        let primary = origin == "pk" || (unique && sqlite_name.eq_ignore_ascii_case(&pkey_name));
        // SQLite names constraint-backed indexes sqlite_autoindex_*; show PostgreSQL's names.
        let name = if origin == "pk" {
            pkey_name.clone()
        } else if origin == "u" {
            let cols: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
            format!("{table}_{}_key", cols.join("_"))
        } else {
            sqlite_name
        };
        let predicate = if partial {
            sql.as_deref().and_then(index_predicate)
        } else {
            None
        };
        out.push(Index {
            oid: oids.alloc(&name),
            con_oid: oids.alloc(&format!("constraint:{name}")),
            name,
            unique,
            primary,
            contype: match origin.as_str() {
                "pk" => Some("p"),
                "u" => Some("u"),
                _ if primary => Some("p"),
                _ => None,
            },
            keys,
            predicate,
        });
    }
    // An INTEGER PRIMARY KEY is the rowid itself and has no index in SQLite, but PostgreSQL
    // clients expect the <table>_pkey index and constraint.
    if !out.iter().any(|i| i.primary) {
        let pk_cols: Vec<(String, i64)> = conn
            .prepare(
                "SELECT name, cid, pk FROM pragma_table_info(?1, 'main') WHERE pk > 0 ORDER BY pk",
            )?
            .query_map([table], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if !pk_cols.is_empty() && !out.iter().any(|i| i.name.eq_ignore_ascii_case(&pkey_name)) {
            out.push(Index {
                oid: oids.alloc(&pkey_name),
                con_oid: oids.alloc(&format!("constraint:{pkey_name}")),
                name: pkey_name,
                unique: true,
                primary: true,
                contype: Some("p"),
                keys: pk_cols
                    .into_iter()
                    .map(|(n, cid)| (n, cid + 1, false))
                    .collect(),
                predicate: None,
            });
        }
    }
    // psql lists the primary key first and the rest by name; keep the same order here.
    out.sort_by(|a, b| b.primary.cmp(&a.primary).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// Splits the key list of `CREATE INDEX ... ON t (a, lower(b))` at top-level commas. Only used
/// for expression keys, which the pragmas report without text.
fn index_expressions(sql: &str) -> Option<Vec<String>> {
    let on = find_keyword(sql, " ON ")?;
    let open = sql[on..].find('(')? + on;
    let mut depth = 0i32;
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for ch in sql[open + 1..].chars() {
        if let Some(q) = quote {
            current.push(ch);
            if ch == q {
                quote = None;
            }
            continue;
        }
        match ch {
            '\'' | '"' | '`' => {
                quote = Some(ch);
                current.push(ch);
            }
            '(' => {
                depth += 1;
                current.push(ch);
            }
            ')' if depth == 0 => {
                parts.push(current.trim().to_string());
                return Some(parts);
            }
            ')' => {
                depth -= 1;
                current.push(ch);
            }
            ',' if depth == 0 => {
                parts.push(current.trim().to_string());
                current.clear();
            }
            _ => current.push(ch),
        }
    }
    None
}

fn index_predicate(sql: &str) -> Option<String> {
    let at = find_keyword(sql, " WHERE ")?;
    Some(sql[at + 7..].trim().to_string())
}

/// Case-insensitive search for an ASCII keyword; returns a byte offset into `haystack`.
fn find_keyword(haystack: &str, keyword: &str) -> Option<usize> {
    haystack.to_ascii_uppercase().find(keyword)
}

fn write_relation(conn: &Connection, rel: &Relation, owner: &str) -> rusqlite::Result<()> {
    let is_table = rel.kind == "r";
    insert(
        conn,
        "pg_class",
        &[
            ("oid", int(rel.oid)),
            ("relname", txt(&rel.name)),
            ("relnamespace", int(NS_PUBLIC)),
            ("relowner", int(ROLE_SUPERUSER)),
            ("relam", int(if is_table { AM_HEAP } else { 0 })),
            ("relfilenode", int(if is_table { rel.oid } else { 0 })),
            ("reltuples", int(-1)),
            ("relhasindex", boolean(!rel.indexes.is_empty())),
            ("relpersistence", txt("p")),
            ("relkind", txt(rel.kind)),
            ("relnatts", int(rel.columns.len() as i64)),
            ("relispopulated", boolean(true)),
            ("relreplident", txt(if is_table { "d" } else { "n" })),
        ],
    )?;
    for (i, col) in rel.columns.iter().enumerate() {
        let attnum = i as i64 + 1;
        insert_attribute(conn, rel.oid, col, attnum)?;
        if let Some(default) = &col.default {
            insert(
                conn,
                "pg_attrdef",
                &[
                    ("oid", int(col.default_oid)),
                    ("adrelid", int(rel.oid)),
                    ("adnum", int(attnum)),
                    ("adbin", txt(default)),
                ],
            )?;
        }
    }
    if is_table {
        insert(
            conn,
            "pg_tables",
            &[
                ("schemaname", txt("public")),
                ("tablename", txt(&rel.name)),
                ("tableowner", txt(owner)),
                ("hasindexes", boolean(!rel.indexes.is_empty())),
            ],
        )?;
        insert(
            conn,
            "pg_stat_user_tables",
            &[
                ("relid", int(rel.oid)),
                ("schemaname", txt("public")),
                ("relname", txt(&rel.name)),
            ],
        )?;
    } else {
        let definition = rel
            .sql
            .as_deref()
            .and_then(|s| find_keyword(s, " AS ").map(|at| s[at + 4..].trim().to_string()));
        insert(
            conn,
            "pg_views",
            &[
                ("schemaname", txt("public")),
                ("viewname", txt(&rel.name)),
                ("viewowner", txt(owner)),
                ("definition", opt_txt(definition.as_deref())),
            ],
        )?;
    }
    for index in &rel.indexes {
        write_index(conn, rel, index)?;
    }
    Ok(())
}

fn insert_attribute(
    conn: &Connection,
    relid: i64,
    col: &Column,
    attnum: i64,
) -> rusqlite::Result<()> {
    let t = builtin_type(col.typid);
    let is_array = t.is_some_and(|t| t.category == "A");
    insert(
        conn,
        "pg_attribute",
        &[
            ("attrelid", int(relid)),
            ("attname", txt(&col.name)),
            ("atttypid", int(col.typid)),
            ("attstattarget", int(-1)),
            ("attlen", int(t.map_or(-1, |t| t.len))),
            ("attnum", int(attnum)),
            ("attndims", int(i64::from(is_array))),
            ("attcacheoff", int(-1)),
            ("atttypmod", int(col.typmod)),
            ("attbyval", boolean(t.is_some_and(|t| t.byval))),
            ("attalign", txt(t.map_or("i", |t| t.align))),
            ("attstorage", txt(t.map_or("x", |t| t.storage))),
            ("attnotnull", boolean(col.notnull)),
            ("atthasdef", boolean(col.default.is_some())),
            ("attgenerated", txt(if col.generated { "s" } else { "" })),
            ("attislocal", boolean(true)),
            ("attcollation", int(t.map_or(0, |t| t.collation))),
        ],
    )
}

fn write_index(conn: &Connection, rel: &Relation, index: &Index) -> rusqlite::Result<()> {
    insert(
        conn,
        "pg_class",
        &[
            ("oid", int(index.oid)),
            ("relname", txt(&index.name)),
            ("relnamespace", int(NS_PUBLIC)),
            ("relowner", int(ROLE_SUPERUSER)),
            ("relam", int(AM_BTREE)),
            ("relfilenode", int(index.oid)),
            ("reltuples", int(-1)),
            ("relpersistence", txt("p")),
            ("relkind", txt("i")),
            ("relnatts", int(index.keys.len() as i64)),
            ("relispopulated", boolean(true)),
            ("relreplident", txt("n")),
        ],
    )?;
    for (i, (name, attnum, _)) in index.keys.iter().enumerate() {
        let col = rel
            .columns
            .get((*attnum - 1).max(0) as usize)
            .filter(|_| *attnum > 0);
        let (typid, typmod) = col.map_or((25, -1), |c| (c.typid, c.typmod));
        let att = Column {
            name: name.clone(),
            typid,
            typmod,
            notnull: false,
            default: None,
            default_oid: 0,
            generated: false,
        };
        insert_attribute(conn, index.oid, &att, i as i64 + 1)?;
    }
    let n = index.keys.len() as i64;
    let indkey: Vec<String> = index.keys.iter().map(|k| k.1.to_string()).collect();
    let zeros = vec!["0"; index.keys.len()].join(" ");
    let options: Vec<&str> = index
        .keys
        .iter()
        .map(|k| if k.2 { "3" } else { "0" })
        .collect();
    let exprs: Vec<&str> = index
        .keys
        .iter()
        .filter(|k| k.1 == 0)
        .map(|k| k.0.as_str())
        .collect();
    insert(
        conn,
        "pg_index",
        &[
            ("indexrelid", int(index.oid)),
            ("indrelid", int(rel.oid)),
            ("indnatts", int(n)),
            ("indnkeyatts", int(n)),
            ("indisunique", boolean(index.unique)),
            ("indisprimary", boolean(index.primary)),
            ("indimmediate", boolean(true)),
            ("indisvalid", boolean(true)),
            ("indisready", boolean(true)),
            ("indislive", boolean(true)),
            ("indkey", txt(&indkey.join(" "))),
            ("indcollation", txt(&zeros)),
            ("indclass", txt(&zeros)),
            ("indoption", txt(&options.join(" "))),
            (
                "indexprs",
                if exprs.is_empty() {
                    Value::Null
                } else {
                    txt(&exprs.join(", "))
                },
            ),
            ("indpred", opt_txt(index.predicate.as_deref())),
        ],
    )?;
    let columns: Vec<String> = index
        .keys
        .iter()
        .map(|(name, attnum, desc)| {
            let mut s = if *attnum > 0 {
                quote_ident(name)
            } else {
                format!("({name})")
            };
            if *desc {
                s.push_str(" DESC");
            }
            s
        })
        .collect();
    let unique = if index.unique { "UNIQUE " } else { "" };
    let tail = match &index.predicate {
        Some(p) => format!(" WHERE ({p})"),
        None => String::new(),
    };
    let def_for = |table: String| {
        format!(
            "CREATE {unique}INDEX {} ON {table} USING btree ({}){tail}",
            quote_ident(&index.name),
            columns.join(", ")
        )
    };
    let def = def_for(format!("public.{}", quote_ident(&rel.name)));
    let pretty = def_for(quote_ident(&rel.name));
    conn.execute(
        "INSERT INTO pg_catalog._shardgate_indexdef (oid, relname, def, def_pretty, columns)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![index.oid, index.name, def, pretty, columns.join("\n")],
    )?;
    insert(
        conn,
        "pg_indexes",
        &[
            ("schemaname", txt("public")),
            ("tablename", txt(&rel.name)),
            ("indexname", txt(&index.name)),
            ("indexdef", txt(&def)),
        ],
    )?;
    if let Some(contype) = index.contype {
        let con_oid = index.con_oid;
        let conkey: Vec<String> = index.keys.iter().map(|k| k.1.to_string()).collect();
        insert(
            conn,
            "pg_constraint",
            &[
                ("oid", int(con_oid)),
                ("conname", txt(&index.name)),
                ("connamespace", int(NS_PUBLIC)),
                ("contype", txt(contype)),
                ("convalidated", boolean(true)),
                ("conrelid", int(rel.oid)),
                ("conindid", int(index.oid)),
                ("conislocal", boolean(true)),
                ("connoinherit", boolean(true)),
                ("conkey", txt(&format!("{{{}}}", conkey.join(",")))),
            ],
        )?;
        let kind = if contype == "p" {
            "PRIMARY KEY"
        } else {
            "UNIQUE"
        };
        let cols: Vec<String> = index.keys.iter().map(|k| quote_ident(&k.0)).collect();
        conn.execute(
            "INSERT INTO pg_catalog._shardgate_constraintdef (oid, def) VALUES (?1, ?2)",
            params![con_oid, format!("{kind} ({})", cols.join(", "))],
        )?;
    }
    Ok(())
}

fn builtin_type(oid: i64) -> Option<&'static BuiltinType> {
    BUILTIN_TYPES.iter().find(|t| t.oid == oid)
}

/// Maps a SQLite declared type (as written in CREATE TABLE) to a PostgreSQL (type oid, typmod),
/// for columns the server did not record in `_shardgate_columns`.
fn type_from_decl(decl: &str) -> (i64, i64) {
    let upper = decl.trim().to_ascii_uppercase();
    if upper.ends_with("[]") {
        return (25, -1);
    }
    let (base, args) = match (upper.find('('), upper.find(')')) {
        (Some(open), Some(close)) if close > open => {
            let args: Vec<i64> = upper[open + 1..close]
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect();
            (format!("{} {}", &upper[..open], &upper[close + 1..]), args)
        }
        _ => (upper.clone(), Vec::new()),
    };
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    let with_len = |oid: i64| match args.first() {
        Some(n) => (oid, n + 4),
        None => (oid, -1),
    };
    match base.as_str() {
        "" => (25, -1),
        "INTEGER" | "INT" | "INT4" | "MEDIUMINT" | "SERIAL" | "SERIAL4" => (23, -1),
        "BIGINT" | "INT8" | "BIGSERIAL" | "SERIAL8" | "UNSIGNED BIG INT" => (20, -1),
        "SMALLINT" | "INT2" | "TINYINT" | "SMALLSERIAL" | "SERIAL2" => (21, -1),
        "TEXT" | "CLOB" | "STRING" => (25, -1),
        "VARCHAR" | "CHARACTER VARYING" | "NVARCHAR" | "VARYING CHARACTER" | "NATIVE CHARACTER" => {
            with_len(1043)
        }
        "CHAR" | "CHARACTER" | "BPCHAR" | "NCHAR" => match args.first() {
            Some(n) => (1042, n + 4),
            None if base == "BPCHAR" => (1042, -1),
            None => (1042, 5),
        },
        "REAL" | "FLOAT4" => (700, -1),
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT8" | "FLOAT" => (701, -1),
        "BOOLEAN" | "BOOL" => (16, -1),
        "BLOB" | "BYTEA" => (17, -1),
        "NUMERIC" | "DECIMAL" | "DEC" => match args.as_slice() {
            [p] => (1700, (p << 16) + 4),
            [p, s, ..] => (1700, ((p << 16) | s) + 4),
            [] => (1700, -1),
        },
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" | "DATETIME" => {
            (1114, args.first().copied().unwrap_or(-1))
        }
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => (1184, args.first().copied().unwrap_or(-1)),
        "DATE" => (1082, -1),
        "TIME" | "TIME WITHOUT TIME ZONE" => (1083, args.first().copied().unwrap_or(-1)),
        "TIMETZ" | "TIME WITH TIME ZONE" => (1266, args.first().copied().unwrap_or(-1)),
        "INTERVAL" => (1186, -1),
        "UUID" => (2950, -1),
        "JSON" => (114, -1),
        "JSONB" => (3802, -1),
        "NAME" => (19, -1),
        "OID" => (26, -1),
        "MONEY" => (790, -1),
        "INET" => (869, -1),
        "CIDR" => (650, -1),
        "XML" => (142, -1),
        // SQLite's own affinity rules decide the rest.
        b if b.contains("INT") => (23, -1),
        b if b.contains("CHAR") || b.contains("CLOB") || b.contains("TEXT") => (25, -1),
        b if b.contains("BLOB") => (17, -1),
        b if b.contains("REAL") || b.contains("FLOA") || b.contains("DOUB") => (701, -1),
        _ => (1700, -1),
    }
}

/// PostgreSQL's `format_type(oid, typmod)`. `typmod` is `None` for SQL NULL, which differs from
/// -1 for `bpchar` exactly as in PostgreSQL.
fn format_type(oid: i64, typmod: Option<i64>) -> String {
    let given = typmod.is_some();
    let tm = typmod.unwrap_or(-1);
    let with_mod = tm >= 0;
    if let Some(t) = builtin_type(oid)
        && t.category == "A"
        && t.elem != 0
    {
        return format!("{}[]", format_type(t.elem, typmod));
    }
    let precision = |base: &str, suffix: &str| {
        if with_mod {
            format!("{base}({tm}){suffix}")
        } else {
            format!("{base}{suffix}")
        }
    };
    match oid {
        0 => "-".to_string(),
        16 => "boolean".to_string(),
        18 => "\"char\"".to_string(),
        20 => "bigint".to_string(),
        21 => "smallint".to_string(),
        23 => "integer".to_string(),
        700 => "real".to_string(),
        701 => "double precision".to_string(),
        1042 if with_mod => format!("character({})", tm - 4),
        1042 if given => "bpchar".to_string(),
        1042 => "character".to_string(),
        1043 if with_mod => format!("character varying({})", tm - 4),
        1043 => "character varying".to_string(),
        1083 => precision("time", " without time zone"),
        1266 => precision("time", " with time zone"),
        1114 => precision("timestamp", " without time zone"),
        1184 => precision("timestamp", " with time zone"),
        1560 => precision("bit", ""),
        1562 => precision("bit varying", ""),
        1700 if with_mod => {
            let m = tm - 4;
            format!("numeric({},{})", (m >> 16) & 0xffff, m & 0xffff)
        }
        _ => builtin_type(oid).map_or_else(|| "???".to_string(), |t| t.name.to_string()),
    }
}

/// Renders a SQLite column default the way `pg_get_expr(adbin, adrelid)` prints the same
/// default in PostgreSQL: string literals carry a cast to the column type, non-negative numbers
/// are bare, negative ones are quoted and cast.
fn render_default(sqlite_default: &str, typid: i64) -> String {
    let d = sqlite_default.trim();
    let quoted = d.len() >= 2 && d.starts_with('\'') && d.ends_with('\'');
    if quoted {
        let inner = d[1..d.len() - 1].replace("''", "'");
        if typid == 16 {
            match inner.to_ascii_lowercase().as_str() {
                "t" | "true" | "yes" | "on" | "1" => return "true".to_string(),
                "f" | "false" | "no" | "off" | "0" => return "false".to_string(),
                _ => {}
            }
        }
        if is_numeric_type(typid) && inner.trim().parse::<f64>().is_ok() {
            return render_number(inner.trim());
        }
        return format!("{d}::{}", format_type(typid, Some(-1)));
    }
    if d.parse::<f64>().is_ok() && !d.is_empty() {
        if typid == 16 {
            return if d == "0" { "false" } else { "true" }.to_string();
        }
        return render_number(d);
    }
    match d.to_ascii_lowercase().as_str() {
        "true" | "false" | "null" => d.to_ascii_lowercase(),
        _ => d.to_string(),
    }
}

fn is_numeric_type(typid: i64) -> bool {
    matches!(typid, 20 | 21 | 23 | 700 | 701 | 1700 | 26)
}

fn render_number(s: &str) -> String {
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Some(rest) = s.strip_prefix('-') {
        let is_int = rest.bytes().all(|b| b.is_ascii_digit());
        return format!("'{s}'::{}", if is_int { "integer" } else { "numeric" });
    }
    s.to_string()
}

/// PostgreSQL's `quote_ident`: quotes unless the name is a plain lower-case identifier.
fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !RESERVED_WORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Reserved words PostgreSQL quotes in `quote_ident` (the fully reserved set).
const RESERVED_WORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

/// Parses PostgreSQL's array text form (`{a,"b c",NULL}`) or an `int2vector`/`oidvector`
/// (`1 2 3`). Vectors are 0-based in PostgreSQL, arrays 1-based; the flag says which.
fn parse_array(text: &str) -> (Vec<Option<String>>, bool) {
    let t = text.trim();
    let Some(body) = t.strip_prefix('{').and_then(|b| b.strip_suffix('}')) else {
        let items = t.split_whitespace().map(|s| Some(s.to_string())).collect();
        return (items, true);
    };
    let mut items = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut was_quoted = false;
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quotes => {
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            '"' => {
                in_quotes = !in_quotes;
                was_quoted = true;
            }
            ',' if !in_quotes => {
                items.push(array_item(&current, was_quoted));
                current.clear();
                was_quoted = false;
            }
            _ => current.push(c),
        }
    }
    if !body.is_empty() {
        items.push(array_item(&current, was_quoted));
    }
    (items, false)
}

fn array_item(raw: &str, quoted: bool) -> Option<String> {
    if !quoted && raw.trim().eq_ignore_ascii_case("NULL") {
        None
    } else if quoted {
        Some(raw.to_string())
    } else {
        Some(raw.trim().to_string())
    }
}

/// Text of an SQL value as PostgreSQL would compare it inside an array.
fn value_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

fn arg_text(ctx: &Context<'_>, i: usize) -> Option<String> {
    if i < ctx.len() {
        value_text(ctx.get_raw(i))
    } else {
        None
    }
}

fn arg_int(ctx: &Context<'_>, i: usize) -> Option<i64> {
    if i >= ctx.len() {
        return None;
    }
    match ctx.get_raw(i) {
        ValueRef::Integer(v) => Some(v),
        ValueRef::Real(f) => Some(f as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn arg_bool(ctx: &Context<'_>, i: usize) -> bool {
    match arg_text(ctx, i) {
        Some(t) => matches!(
            t.to_ascii_lowercase().as_str(),
            "1" | "t" | "true" | "on" | "yes"
        ),
        None => false,
    }
}

fn user_error(msg: String) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(msg.into())
}

/// Runs a one-value query against the catalog from inside a scalar function.
fn catalog_lookup(
    ctx: &Context<'_>,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Option<Value>> {
    // SAFETY: the connection handle is only used on this thread, for the duration of this
    // call, to run a read-only query on the attached catalog; SQLite allows such nested
    // statements from inside a function and nothing here outlives the function invocation.
    let conn = unsafe { ctx.get_connection()? };
    conn.query_row(sql, params, |r| r.get::<_, Value>(0))
        .optional()
}

fn register_functions(conn: &Connection, info: &ServerInfo) -> rusqlite::Result<()> {
    let det = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    let plain = FunctionFlags::SQLITE_UTF8;

    let version = format!(
        "PostgreSQL {} on x86_64-pc-linux-gnu, compiled by rustc, 64-bit",
        info.server_version
    );
    conn.create_scalar_function("version", 0, det, move |_| Ok(version.clone()))?;
    let database = info.database.clone();
    conn.create_scalar_function("current_database", 0, det, move |_| Ok(database.clone()))?;
    conn.create_scalar_function("current_catalog", 0, det, {
        let database = info.database.clone();
        move |_| Ok(database.clone())
    })?;
    conn.create_scalar_function("current_schema", 0, det, |_| Ok("public"))?;
    conn.create_scalar_function("current_schemas", 1, det, |ctx| {
        Ok(if arg_bool(ctx, 0) {
            "{pg_catalog,public}"
        } else {
            "{public}"
        })
    })?;
    for name in ["current_user", "session_user", "current_role", "user"] {
        let user = info.user.clone();
        conn.create_scalar_function(name, 0, det, move |_| Ok(user.clone()))?;
    }
    let user = Arc::new(info.user.clone());
    conn.create_scalar_function("pg_get_userbyid", 1, det, move |ctx| {
        Ok(match arg_int(ctx, 0) {
            None => None,
            Some(ROLE_SUPERUSER) => Some(user.as_str().to_string()),
            Some(ROLE_DATABASE_OWNER) => Some("pg_database_owner".to_string()),
            Some(other) => Some(format!("unknown (OID={other})")),
        })
    })?;
    for name in [
        "pg_table_is_visible",
        "pg_type_is_visible",
        "pg_function_is_visible",
        "pg_collation_is_visible",
        "pg_opclass_is_visible",
        "pg_statistics_obj_is_visible",
    ] {
        conn.create_scalar_function(name, 1, det, |ctx| Ok(arg_int(ctx, 0).map(|oid| oid != 0)))?;
    }
    conn.create_scalar_function("format_type", 2, det, |ctx| {
        Ok(arg_int(ctx, 0).map(|oid| format_type(oid, arg_int(ctx, 1))))
    })?;
    // `x::regtype` is rewritten to this; PostgreSQL prints regtype without a type modifier.
    conn.create_scalar_function("regtype_out", 1, det, |ctx| {
        Ok(arg_int(ctx, 0).map(|oid| format_type(oid, None)))
    })?;
    // Defaults are stored already deparsed, so the expression is its own text.
    conn.create_scalar_function("pg_get_expr", -1, det, |ctx| Ok(arg_text(ctx, 0)))?;
    conn.create_scalar_function("pg_get_indexdef", -1, plain, |ctx| {
        let Some(oid) = arg_int(ctx, 0) else {
            return Ok(None);
        };
        let column = arg_int(ctx, 1).unwrap_or(0);
        let pretty = arg_bool(ctx, 2);
        let sql = if column > 0 {
            "SELECT columns FROM pg_catalog._shardgate_indexdef WHERE oid = ?1"
        } else if pretty {
            "SELECT def_pretty FROM pg_catalog._shardgate_indexdef WHERE oid = ?1"
        } else {
            "SELECT def FROM pg_catalog._shardgate_indexdef WHERE oid = ?1"
        };
        let found = catalog_lookup(ctx, sql, &[&oid])?;
        Ok(match found {
            Some(Value::Text(t)) if column > 0 => {
                t.split('\n').nth((column - 1) as usize).map(str::to_string)
            }
            Some(Value::Text(t)) => Some(t),
            _ => None,
        })
    })?;
    conn.create_scalar_function("pg_get_constraintdef", -1, plain, |ctx| {
        let Some(oid) = arg_int(ctx, 0) else {
            return Ok(None);
        };
        let found = catalog_lookup(
            ctx,
            "SELECT def FROM pg_catalog._shardgate_constraintdef WHERE oid = ?1",
            &[&oid],
        )?;
        Ok(match found {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        })
    })?;
    // `'name'::regclass`: a relation name (optionally schema-qualified or quoted) or an oid in
    // text form, to the relation's oid.
    conn.create_scalar_function("regclass_in", 1, plain, |ctx| {
        let Some(text) = arg_text(ctx, 0) else {
            return Ok(None);
        };
        if let Ok(oid) = text.trim().parse::<i64>() {
            return Ok(Some(oid));
        }
        let (schema, name) = split_qualified(&text);
        let found = catalog_lookup(
            ctx,
            "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n
               ON n.oid = c.relnamespace
             WHERE c.relname = ?1 AND (?2 IS NULL OR n.nspname = ?2)
             ORDER BY n.nspname <> 'pg_catalog' LIMIT 1",
            &[&name, &schema],
        )?;
        match found {
            Some(Value::Integer(oid)) => Ok(Some(oid)),
            _ => Err(user_error(format!("relation \"{text}\" does not exist"))),
        }
    })?;
    // `c.oid::regclass` in output position: the relation's name, '-' for 0 as PostgreSQL prints.
    conn.create_scalar_function("regclass_out", 1, plain, |ctx| {
        let Some(oid) = arg_int(ctx, 0) else {
            return Ok(None);
        };
        if oid == 0 {
            return Ok(Some("-".to_string()));
        }
        let found = catalog_lookup(
            ctx,
            "SELECT relname FROM pg_catalog.pg_class WHERE oid = ?1",
            &[&oid],
        )?;
        Ok(Some(match found {
            Some(Value::Text(t)) => quote_ident(&t),
            _ => oid.to_string(),
        }))
    })?;
    conn.create_scalar_function("regnamespace_out", 1, plain, |ctx| {
        let Some(oid) = arg_int(ctx, 0) else {
            return Ok(None);
        };
        let found = catalog_lookup(
            ctx,
            "SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = ?1",
            &[&oid],
        )?;
        Ok(Some(match found {
            Some(Value::Text(t)) => quote_ident(&t),
            _ => oid.to_string(),
        }))
    })?;
    conn.create_scalar_function("regtype_in", 1, det, |ctx| {
        let Some(text) = arg_text(ctx, 0) else {
            return Ok(None);
        };
        if let Ok(oid) = text.trim().parse::<i64>() {
            return Ok(Some(oid));
        }
        let (_, name) = split_qualified(&text);
        BUILTIN_TYPES
            .iter()
            .find(|t| t.name == name || format_type(t.oid, None) == name)
            .map(|t| Some(t.oid))
            .ok_or_else(|| user_error(format!("type \"{text}\" does not exist")))
    })?;
    conn.create_scalar_function("regnamespace_in", 1, plain, |ctx| {
        let Some(text) = arg_text(ctx, 0) else {
            return Ok(None);
        };
        if let Ok(oid) = text.trim().parse::<i64>() {
            return Ok(Some(oid));
        }
        let (_, name) = split_qualified(&text);
        match catalog_lookup(
            ctx,
            "SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = ?1",
            &[&name],
        )? {
            Some(Value::Integer(oid)) => Ok(Some(oid)),
            _ => Err(user_error(format!("schema \"{text}\" does not exist"))),
        }
    })?;
    conn.create_scalar_function("current_setting", -1, plain, |ctx| {
        let Some(name) = arg_text(ctx, 0) else {
            return Ok(None);
        };
        let found = catalog_lookup(
            ctx,
            "SELECT setting FROM pg_catalog.pg_settings WHERE lower(name) = lower(?1)",
            &[&name],
        )?;
        match found {
            Some(Value::Text(t)) => Ok(Some(t)),
            _ if arg_bool(ctx, 1) => Ok(None),
            _ => Err(user_error(format!(
                "unrecognized configuration parameter \"{name}\""
            ))),
        }
    })?;
    for (name, n) in [
        ("obj_description", -1),
        ("col_description", 2),
        ("shobj_description", 2),
        ("pg_get_statisticsobjdef_columns", 1),
        ("pg_get_triggerdef", -1),
        ("pg_get_viewdef", -1),
        ("pg_get_partkeydef", 1),
        ("pg_get_serial_sequence", 2),
    ] {
        conn.create_scalar_function(name, n, det, |_| Ok(None::<String>))?;
    }
    conn.create_scalar_function("pg_encoding_to_char", 1, det, |ctx| {
        Ok(match arg_int(ctx, 0) {
            Some(6) => "UTF8",
            Some(0) => "SQL_ASCII",
            _ => "",
        })
    })?;
    conn.create_scalar_function("array_to_string", -1, det, |ctx| {
        let Some(text) = arg_text(ctx, 0) else {
            return Ok(None);
        };
        let sep = arg_text(ctx, 1).unwrap_or_default();
        let null_as = arg_text(ctx, 2);
        let (items, _) = parse_array(&text);
        let parts: Vec<String> = items
            .into_iter()
            .filter_map(|i| i.or_else(|| null_as.clone()))
            .collect();
        Ok(Some(parts.join(&sep)))
    })?;
    // `x = ANY(array_column)` is rewritten to this.
    conn.create_scalar_function("pg_any_eq", 2, det, |ctx| {
        let (Some(needle), Some(array)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else {
            return Ok(None);
        };
        let (items, _) = parse_array(&array);
        Ok(Some(
            items.iter().any(|i| i.as_deref() == Some(needle.as_str())),
        ))
    })?;
    // `arr[i]` is rewritten to this.
    conn.create_scalar_function("pg_array_elem", 2, det, |ctx| {
        let (Some(array), Some(index)) = (arg_text(ctx, 0), arg_int(ctx, 1)) else {
            return Ok(None);
        };
        let (items, zero_based) = parse_array(&array);
        let pos = if zero_based { index } else { index - 1 };
        Ok(usize::try_from(pos)
            .ok()
            .and_then(|p| items.get(p).cloned())
            .flatten())
    })?;
    // The element at a 1-based position, for arrays and 0-based vectors alike
    // (`_pg_expandarray(arr)` is rewritten to this).
    conn.create_scalar_function("pg_array_nth", 2, det, |ctx| {
        let (Some(array), Some(position)) = (arg_text(ctx, 0), arg_int(ctx, 1)) else {
            return Ok(None);
        };
        let (items, _) = parse_array(&array);
        Ok(usize::try_from(position - 1)
            .ok()
            .and_then(|p| items.get(p).cloned())
            .flatten())
    })?;
    conn.create_scalar_function("array_position", -1, det, |ctx| {
        let (Some(array), Some(needle)) = (arg_text(ctx, 0), arg_text(ctx, 1)) else {
            return Ok(None);
        };
        let (items, _) = parse_array(&array);
        Ok(items
            .iter()
            .position(|i| i.as_deref() == Some(needle.as_str()))
            .map(|p| p as i64 + 1))
    })?;
    for (name, which) in [
        ("array_upper", 0),
        ("array_length", 1),
        ("cardinality", 1),
        ("array_lower", 2),
    ] {
        conn.create_scalar_function(name, -1, det, move |ctx| {
            let Some(array) = arg_text(ctx, 0) else {
                return Ok(None);
            };
            let (items, zero_based) = parse_array(&array);
            if items.is_empty() {
                return Ok(None);
            }
            let n = items.len() as i64;
            let lower = if zero_based { 0 } else { 1 };
            Ok(Some(match which {
                0 => lower + n - 1,
                1 => n,
                _ => lower,
            }))
        })?;
    }
    for name in [
        "pg_relation_size",
        "pg_table_size",
        "pg_total_relation_size",
        "pg_indexes_size",
        "pg_database_size",
    ] {
        conn.create_scalar_function(name, -1, plain, |_| Ok(0i64))?;
    }
    conn.create_scalar_function("pg_size_pretty", 1, det, |ctx| {
        Ok(arg_int(ctx, 0).map(size_pretty))
    })?;
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
        "has_sequence_privilege",
        "has_function_privilege",
        "pg_has_role",
    ] {
        conn.create_scalar_function(name, -1, det, |_| Ok(true))?;
    }
    conn.create_scalar_function("pg_relation_is_publishable", 1, det, |_| Ok(false))?;
    conn.create_scalar_function("pg_is_in_recovery", 0, det, |_| Ok(false))?;
    conn.create_scalar_function("pg_backend_pid", 0, det, |_| {
        Ok(i64::from(std::process::id()))
    })?;
    conn.create_scalar_function("quote_ident", 1, det, |ctx| {
        Ok(arg_text(ctx, 0).map(|t| quote_ident(&t)))
    })?;
    // SQLite evaluates `x REGEXP p` as regexp(p, x).
    conn.create_scalar_function("regexp", 2, det, |ctx| {
        if matches!(ctx.get_raw(0), ValueRef::Null) || matches!(ctx.get_raw(1), ValueRef::Null) {
            return Ok(None);
        }
        let re = ctx.get_or_create_aux(0, |v| -> Result<regex::Regex, String> {
            let pattern = value_text(v).unwrap_or_default();
            regex::Regex::new(&translate_pg_regex(&pattern))
                .map_err(|e| format!("invalid regular expression: {e}"))
        })?;
        let text = arg_text(ctx, 1).unwrap_or_default();
        Ok(Some(re.is_match(&text)))
    })?;
    Ok(())
}

/// Splits `schema.name` / `"Quoted"` into unquoted parts; names are folded to lower case
/// unless quoted, as PostgreSQL's regclass input does.
fn split_qualified(text: &str) -> (Option<String>, String) {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            _ if quoted => current.push(c),
            _ => current.push(c.to_ascii_lowercase()),
        }
    }
    parts.push(current);
    let name = parts.pop().unwrap_or_default();
    (parts.pop(), name)
}

/// PostgreSQL's advanced regular expressions are close to the `regex` crate's syntax; the word
/// boundary escapes differ.
fn translate_pg_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('m') => out.push_str(r"\b{start}"),
                Some('M') => out.push_str(r"\b{end}"),
                Some('y') => out.push_str(r"\b"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// PostgreSQL's `pg_size_pretty(bigint)`.
fn size_pretty(size: i64) -> String {
    let limit: i64 = 10 * 1024;
    let limit2: i64 = limit * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if size.abs() < limit {
        return format!("{size} bytes");
    }
    let mut size = size >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < limit2 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ServerInfo {
        ServerInfo {
            database: "shop".into(),
            user: "alice".into(),
            server_version: "15.0 (shardgate 0.1.0)".into(),
        }
    }

    fn conn_with(ddl: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(ddl).unwrap();
        install(&conn, &info()).unwrap();
        refresh(&conn).unwrap();
        conn
    }

    fn strings(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get::<_, Value>(i).unwrap() {
                    Value::Null => "NULL".to_string(),
                    Value::Integer(v) => v.to_string(),
                    Value::Real(v) => v.to_string(),
                    Value::Text(t) => t,
                    Value::Blob(_) => "<blob>".to_string(),
                })
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }

    #[test]
    fn format_type_matches_postgres() {
        // Expected values printed by PostgreSQL 15's format_type.
        let cases: &[(i64, Option<i64>, &str)] = &[
            (23, Some(-1), "integer"),
            (20, None, "bigint"),
            (21, Some(-1), "smallint"),
            (1043, Some(24), "character varying(20)"),
            (1043, Some(-1), "character varying"),
            (1700, Some(655366), "numeric(10,2)"),
            (1700, Some(-1), "numeric"),
            (1114, Some(-1), "timestamp without time zone"),
            (1114, Some(7), "timestamp(7) without time zone"),
            (1184, Some(-1), "timestamp with time zone"),
            (1083, Some(-1), "time without time zone"),
            (16, Some(-1), "boolean"),
            (25, Some(-1), "text"),
            (701, Some(-1), "double precision"),
            (700, Some(-1), "real"),
            (17, Some(-1), "bytea"),
            (1082, Some(-1), "date"),
            (2950, Some(-1), "uuid"),
            (114, Some(-1), "json"),
            (3802, Some(-1), "jsonb"),
            (1042, None, "character"),
            (1042, Some(-1), "bpchar"),
            (1042, Some(8), "character(4)"),
            (1007, Some(-1), "integer[]"),
            (1015, Some(24), "character varying(20)[]"),
            (18, Some(-1), "\"char\""),
            (0, Some(-1), "-"),
            (99999, Some(-1), "???"),
            (1186, Some(-1), "interval"),
            (1560, Some(5), "bit(5)"),
            (1562, Some(-1), "bit varying"),
        ];
        for (oid, typmod, want) in cases {
            assert_eq!(format_type(*oid, *typmod), *want, "{oid} {typmod:?}");
        }
        let conn = conn_with("");
        assert_eq!(
            strings(
                &conn,
                "SELECT format_type(1043, 24), format_type(1042, NULL), format_type(NULL, 1)"
            ),
            ["character varying(20)|character|NULL"]
        );
    }

    #[test]
    fn defaults_render_like_pg_get_expr() {
        // Expected values printed by PostgreSQL 15's pg_get_expr for the same defaults.
        let cases: &[(&str, i64, &str)] = &[
            ("5", 23, "5"),
            ("-1", 23, "'-1'::integer"),
            ("-3", 20, "'-3'::integer"),
            ("1.5", 1700, "1.5"),
            ("'hi'", 25, "'hi'::text"),
            ("'it''s'", 25, "'it''s'::text"),
            ("true", 16, "true"),
            ("'2020-01-01'", 1082, "'2020-01-01'::date"),
            ("CURRENT_TIMESTAMP", 1114, "CURRENT_TIMESTAMP"),
            ("'ab'", 1043, "'ab'::character varying"),
            ("'a'", 1042, "'a'::bpchar"),
            ("'{}'", 3802, "'{}'::jsonb"),
            ("'7'", 23, "7"),
        ];
        for (sqlite, typid, want) in cases {
            assert_eq!(render_default(sqlite, *typid), *want, "{sqlite}");
        }
    }

    #[test]
    fn declared_types_fall_back_to_sqlite_type_names() {
        let conn = conn_with(
            "CREATE TABLE f (a INTEGER, b BIGINT, c TEXT, d VARCHAR(10), e REAL,
                 g DOUBLE PRECISION, h BOOLEAN, i BLOB, j NUMERIC(8,3), k TIMESTAMP, l, m BYTEA,
                 n timestamptz, o uuid, p jsonb, q char(3))",
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
                 WHERE c.relname = 'f' ORDER BY a.attnum"
            ),
            [
                "a integer",
                "b bigint",
                "c text",
                "d character varying(10)",
                "e real",
                "g double precision",
                "h boolean",
                "i bytea",
                "j numeric(8,3)",
                "k timestamp without time zone",
                "l text",
                "m bytea",
                "n timestamp with time zone",
                "o uuid",
                "p jsonb",
                "q character(3)",
            ]
        );
    }

    #[test]
    fn refresh_is_a_no_op_until_the_schema_changes() {
        let conn = conn_with("CREATE TABLE a (x INTEGER PRIMARY KEY)");
        let oid_a = strings(
            &conn,
            "SELECT oid FROM pg_catalog.pg_class WHERE relname = 'a'",
        );
        // A rebuild would restore the row deleted here, so its absence proves the no-op.
        conn.execute("DELETE FROM pg_catalog.pg_class WHERE relname = 'a'", [])
            .unwrap();
        refresh(&conn).unwrap();
        assert!(
            strings(
                &conn,
                "SELECT oid FROM pg_catalog.pg_class WHERE relname = 'a'"
            )
            .is_empty()
        );
        conn.execute_batch("CREATE TABLE b (y TEXT)").unwrap();
        refresh(&conn).unwrap();
        assert_eq!(
            strings(
                &conn,
                "SELECT oid FROM pg_catalog.pg_class WHERE relname = 'a'"
            ),
            oid_a,
            "oids are stable across rebuilds"
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT relkind FROM pg_catalog.pg_class WHERE relname = 'b'"
            ),
            ["r"]
        );
        // Another connection to the same schema hands out the same oids.
        let other = conn_with("CREATE TABLE a (x INTEGER PRIMARY KEY)");
        assert_eq!(
            strings(
                &other,
                "SELECT oid FROM pg_catalog.pg_class WHERE relname = 'a'"
            ),
            oid_a
        );
    }

    #[test]
    fn refresh_works_inside_a_transaction() {
        let conn = conn_with("");
        conn.execute_batch("BEGIN; CREATE TABLE a (x INTEGER);")
            .unwrap();
        refresh(&conn).unwrap();
        assert_eq!(
            strings(
                &conn,
                "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'a'"
            ),
            ["1"]
        );
        conn.execute_batch("ROLLBACK").unwrap();
        refresh(&conn).unwrap();
        assert_eq!(
            strings(
                &conn,
                "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'a'"
            ),
            ["0"]
        );
    }

    #[test]
    fn indexes_and_constraints_get_postgres_names_and_definitions() {
        let conn = conn_with(
            "CREATE TABLE k (a INTEGER, b TEXT, c TEXT UNIQUE, PRIMARY KEY (a, b)) WITHOUT ROWID;
             CREATE UNIQUE INDEX k_lower ON k (lower(b), a DESC);
             CREATE TABLE _shardgate_internal (z);
             CREATE VIEW v AS SELECT a FROM k;",
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT c.relname, pg_get_indexdef(c.oid), i.indkey, i.indisprimary, i.indisunique
                 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                 ORDER BY c.relname"
            ),
            [
                "k_c_key|CREATE UNIQUE INDEX k_c_key ON public.k USING btree (c)|3|0|1",
                "k_lower|CREATE UNIQUE INDEX k_lower ON public.k USING btree ((lower(b)), a DESC)|0 1|0|1",
                "k_pkey|CREATE UNIQUE INDEX k_pkey ON public.k USING btree (a, b)|1 2|1|1",
            ]
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT conname, contype, pg_get_constraintdef(oid), conkey
                 FROM pg_catalog.pg_constraint ORDER BY conname"
            ),
            [
                "k_c_key|u|UNIQUE (c)|{3}",
                "k_pkey|p|PRIMARY KEY (a, b)|{1,2}"
            ]
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT relname, relkind FROM pg_catalog.pg_class WHERE oid >= 16384 ORDER BY 1"
            ),
            ["k|r", "k_c_key|i", "k_lower|i", "k_pkey|i", "v|v"]
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT pg_get_indexdef(regclass_in('k_lower'), 2, true)"
            ),
            ["a DESC"]
        );
    }

    #[test]
    fn scalar_functions_answer_like_postgres() {
        let conn = conn_with("CREATE TABLE \"Mixed\" (x INTEGER)");
        assert_eq!(
            strings(
                &conn,
                "SELECT current_database(), current_user(), current_schema(), pg_get_userbyid(10),
                        pg_encoding_to_char(6), quote_ident('Mixed'), quote_ident('plain'),
                        quote_ident('select'), current_schemas(1), current_setting('server_version_num')"
            ),
            ["shop|alice|public|alice|UTF8|\"Mixed\"|plain|\"select\"|{pg_catalog,public}|150000"]
        );
        assert_eq!(
            strings(&conn, "SELECT version()"),
            ["PostgreSQL 15.0 (shardgate 0.1.0) on x86_64-pc-linux-gnu, compiled by rustc, 64-bit"]
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT regclass_out(regclass_in('\"Mixed\"')), regclass_out(regclass_in('pg_class')),
                        regclass_in('pg_class'), regclass_out(0), regtype_out(1043),
                        regtype_in('character varying'), regnamespace_out(2200)"
            ),
            ["\"Mixed\"|pg_class|1259|-|character varying|1043|public"]
        );
        assert!(
            conn.query_row("SELECT regclass_in('nosuch')", [], |_| Ok(()))
                .is_err()
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT pg_size_pretty(10), pg_size_pretty(10240), pg_size_pretty(123456789),
                        array_to_string('{a,b,NULL}', ', '), array_to_string('{a,NULL}', ',', '*'),
                        pg_any_eq('b', '{a,b}'), pg_any_eq(3, '1 2'), pg_array_elem('{x,y}', 2),
                        pg_array_elem('5 6', 0), array_position('{pg_catalog,public}', 'public'),
                        array_upper('{1,2,3}', 1)"
            ),
            ["10 bytes|10 kB|118 MB|a, b|a,*|1|0|y|5|2|3"]
        );
        // pg_array_nth is 1-based for arrays and vectors alike; out of range is NULL.
        assert_eq!(
            strings(
                &conn,
                "SELECT pg_array_nth('{x,y}', 2), pg_array_nth('5 6', 1), pg_array_nth('5 6', 2),
                        coalesce(pg_array_nth('5 6', 3), 'null'), coalesce(pg_array_nth('5', 0), 'null')"
            ),
            ["y|5|6|null|null"]
        );
    }

    #[test]
    fn regexp_follows_postgres_patterns() {
        let conn = conn_with("");
        assert_eq!(
            strings(
                &conn,
                "SELECT 't' REGEXP '^(t)$', 'tt' REGEXP '^(t)$', 'pg_toast' REGEXP '^pg_',
                        'ABC' REGEXP '(?i)abc', NULL REGEXP 'x', 'a b' REGEXP '\\mb'"
            ),
            ["1|0|1|1|NULL|1"]
        );
        assert!(
            conn.query_row("SELECT 'x' REGEXP '('", [], |_| Ok(()))
                .is_err()
        );
    }

    #[test]
    fn catalog_rows_psql_joins_on_exist() {
        let conn = conn_with("");
        assert_eq!(
            strings(
                &conn,
                "SELECT nspname, nspowner FROM pg_catalog.pg_namespace ORDER BY oid"
            ),
            [
                "pg_catalog|10",
                "pg_toast|10",
                "public|6171",
                "information_schema|10"
            ]
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT datname, encoding, datacl FROM pg_catalog.pg_database"
            ),
            ["shop|6|NULL"]
        );
        assert_eq!(
            strings(&conn, "SELECT amname FROM pg_catalog.pg_am ORDER BY oid"),
            ["heap", "btree"]
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT rolname, rolsuper FROM pg_catalog.pg_roles WHERE oid = 10"
            ),
            ["alice|1"]
        );
        assert_eq!(
            strings(
                &conn,
                "SELECT typname, typarray FROM pg_catalog.pg_type WHERE oid IN (23, 1043) ORDER BY oid"
            ),
            ["int4|1007", "varchar|1015"]
        );
        // install is idempotent: the server may call it on a reused connection.
        install(&conn, &info()).unwrap();
        assert_eq!(
            strings(&conn, "SELECT count(*) FROM pg_catalog.pg_database"),
            ["1"]
        );
    }
}
