#!/usr/bin/env python3
"""psycopg 3 against a running shardgate.

Usage: psycopg_check.py URL   (postgres://app:app@127.0.0.1:PORT/app)

Every check is an assertion; the script prints each failure and exits 1 if any check failed.
Checks for known server gaps are listed, not run, unless SHARDGATE_KNOWN_GAPS=1.
"""
import datetime
import decimal
import os
import sys
import traceback
import uuid

import psycopg
from psycopg import errors
from psycopg.types.json import Json

URL = sys.argv[1]
TABLE = "drv_psycopg"
UTC = datetime.timezone.utc

ROW = {
    "name": "alice",
    "qty": 42,
    "big": 9007199254740993,  # 2**53 + 1: not exact as a double
    "flag": True,
    "ratio": 3.25,
    "price": decimal.Decimal("1234.56"),
    "created": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
    "created_tz": datetime.datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC),
    "day": datetime.date(2024, 2, 29),
    "payload": b"\x00\x01\xffbinary",
    "ident": uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "doc": {"a": 1, "b": [1, 2, "x"], "c": None},
}
TYPES = {
    "id": int,
    "name": str,
    "qty": int,
    "big": int,
    "flag": bool,
    "ratio": float,
    "price": decimal.Decimal,
    "created": datetime.datetime,
    "created_tz": datetime.datetime,
    "day": datetime.date,
    "payload": bytes,
    "ident": uuid.UUID,
    "doc": dict,
}
COLUMNS = list(ROW)

failures = []
passed = []
gaps = []


def check(fn):
    """Runs one check; an exception or failed assertion is recorded as a failure."""
    try:
        fn()
        passed.append(fn.__name__)
    except Exception:  # noqa: BLE001 - every failure is reported
        failures.append(f"{fn.__name__}:\n{traceback.format_exc()}")
        # An open transaction would hold shardgate's single writer and block later checks.
        if not conn.closed:
            conn.rollback()
    return fn


def known_gap(reason):
    """A check for correct behaviour that shardgate does not have yet: listed, not run."""

    def wrap(fn):
        if os.environ.get("SHARDGATE_KNOWN_GAPS") == "1":
            return check(fn)
        gaps.append(f"{fn.__name__}: {reason}")
        return fn

    return wrap


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def connect(**kwargs):
    return psycopg.connect(URL, **kwargs)


def insert_params(row):
    values = dict(row)
    if values.get("doc") is not None:
        values["doc"] = Json(values["doc"])
    return values


def assert_row(got, want, label):
    for col in COLUMNS:
        value = got[col]
        if want[col] is None:
            expect(value is None, f"{label}: {col} should be NULL, got {value!r}")
            continue
        expect(
            type(value) is TYPES[col],
            f"{label}: {col} should be {TYPES[col].__name__}, got {type(value).__name__} {value!r}",
        )
        if col == "ratio":
            expect(abs(value - want[col]) < 1e-12, f"{label}: ratio {value!r} != {want[col]!r}")
        else:
            expect(value == want[col], f"{label}: {col} {value!r} != {want[col]!r}")
    expect(type(got["id"]) is int, f"{label}: id should be int, got {got['id']!r}")


# One connection for most checks; autocommit off, as psycopg applications default to.
conn = connect()


def wrong_password_error():
    try:
        psycopg.connect(URL.replace("app:app@", "app:wrong@"), connect_timeout=5).close()
    except psycopg.OperationalError as e:
        return str(e)
    raise AssertionError("a wrong password was accepted")


@check
def connects_with_password_auth():
    with conn.cursor() as cur:
        cur.execute("SELECT current_database(), 1 + 1")
        expect(cur.fetchone() == ("app", 2), "SELECT current_database() answered wrongly")
    conn.rollback()
    expect(conn.info.server_version >= 100000, f"server_version {conn.info.server_version}")
    message = wrong_password_error()
    expect("authentication failed" in message.lower(), f"wrong password: {message}")


@check
def wrong_password_message_names_the_user():
    message = wrong_password_error()
    expect('password authentication failed for user "app"' in message, message)


@check
def creates_table():
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {TABLE}")
        cur.execute(
            f"""CREATE TABLE {TABLE} (
                id SERIAL PRIMARY KEY,
                name VARCHAR(20) NOT NULL UNIQUE,
                qty INTEGER,
                big BIGINT,
                flag BOOLEAN,
                ratio DOUBLE PRECISION,
                price NUMERIC(10,2),
                created TIMESTAMP,
                created_tz TIMESTAMPTZ,
                day DATE,
                payload BYTEA,
                ident UUID,
                doc JSON
            )"""
        )
    conn.commit()


INSERT = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES "
    f"({', '.join('%(' + c + ')s' for c in COLUMNS)}) RETURNING id"
)


@check
def inserts_with_parameters_and_returning():
    with conn.cursor() as cur:
        cur.execute(INSERT, insert_params(ROW))
        (new_id,) = cur.fetchone()
        expect(new_id == 1, f"RETURNING id gave {new_id!r}, expected 1")
        expect(cur.rowcount == 1, f"rowcount {cur.rowcount}")
        nulls = {c: None for c in COLUMNS}
        nulls["name"] = "nulls"
        cur.execute(INSERT, insert_params(nulls))
        (null_id,) = cur.fetchone()
        expect(null_id == 2, f"second RETURNING id gave {null_id!r}, expected 2")
    conn.commit()


def select_row(name, binary=False):
    with conn.cursor(row_factory=psycopg.rows.dict_row, binary=binary) as cur:
        cur.execute(f"SELECT id, {', '.join(COLUMNS)} FROM {TABLE} WHERE name = %s", (name,))
        rows = cur.fetchall()
        description = cur.description
    conn.rollback()
    return rows, description


@check
def selects_typed_values_by_parameter():
    rows, description = select_row("alice")
    expect(len(rows) == 1, f"expected 1 row, got {rows!r}")
    assert_row(rows[0], ROW, "text format")
    oids = {d.name: d.type_code for d in description}
    want = {"id": 23, "qty": 23, "big": 20, "flag": 16, "ratio": 701, "price": 1700,
            "created": 1114, "created_tz": 1184, "day": 1082, "payload": 17,
            "ident": 2950, "doc": 114, "name": 1043}
    expect(oids == want, f"column type OIDs {oids} != {want}")


@check
def selects_typed_values_in_binary_format():
    rows, _ = select_row("alice", binary=True)
    expect(len(rows) == 1, f"expected 1 row, got {rows!r}")
    assert_row(rows[0], ROW, "binary format")


@check
def connection_execute_binary():
    cur = conn.execute(
        f"SELECT qty, big, price, created_tz, ident FROM {TABLE} WHERE qty = %s",
        (42,),
        binary=True,
    )
    row = cur.fetchone()
    conn.rollback()
    want = (42, ROW["big"], ROW["price"], ROW["created_tz"], ROW["ident"])
    expect(row == want, f"binary conn.execute gave {row!r}, expected {want!r}")


@check
def nulls_round_trip():
    for binary in (False, True):
        rows, _ = select_row("nulls", binary=binary)
        expect(len(rows) == 1, f"expected 1 row, got {rows!r}")
        want = {c: None for c in COLUMNS}
        want["name"] = "nulls"
        assert_row(rows[0], want, f"NULL row (binary={binary})")
    cur = conn.execute("SELECT %s::int AS a, %s::text AS b", (None, None))
    expect(cur.fetchone() == (None, None), "NULL parameters did not come back as None")
    conn.rollback()


def count(where="true", params=()):
    cur = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE {where}", params)
    (n,) = cur.fetchone()
    conn.rollback()
    return n


@check
def commit_persists_and_rollback_discards():
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {TABLE} (name, qty) VALUES (%s, %s)", ("committed", 1))
    conn.commit()
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {TABLE} (name, qty) VALUES (%s, %s)", ("rolled-back", 2))
        cur.execute(f"SELECT count(*) FROM {TABLE} WHERE name = %s", ("rolled-back",))
        expect(cur.fetchone() == (1,), "the uncommitted row is not visible inside its transaction")
    conn.rollback()
    expect(count("name = %s", ("committed",)) == 1, "the committed row is missing")
    expect(count("name = %s", ("rolled-back",)) == 0, "the rolled-back row persisted")
    # The same through the transaction() context manager, which commits on success and
    # rolls back on an exception.
    with connect(autocommit=True) as other:
        with other.transaction():
            other.execute(f"INSERT INTO {TABLE} (name) VALUES (%s)", ("ctx-commit",))
        try:
            with other.transaction():
                other.execute(f"INSERT INTO {TABLE} (name) VALUES (%s)", ("ctx-rollback",))
                raise KeyError("abort")
        except KeyError:
            pass
    expect(count("name = %s", ("ctx-commit",)) == 1, "transaction() did not commit")
    expect(count("name = %s", ("ctx-rollback",)) == 0, "transaction() did not roll back")


@check
def error_inside_transaction_then_rollback():
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {TABLE} (name) VALUES (%s)", ("before-error",))
        try:
            cur.execute("SELECT * FROM no_such_table_psycopg")
        except errors.UndefinedTable as e:
            expect(e.sqlstate == "42P01", f"sqlstate {e.sqlstate}")
        else:
            raise AssertionError("selecting from a missing table did not fail")
        expect(
            conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR,
            f"transaction status {conn.info.transaction_status!r}, expected INERROR",
        )
        try:
            cur.execute("SELECT 1")
        except errors.InFailedSqlTransaction as e:
            expect(e.sqlstate == "25P02", f"sqlstate {e.sqlstate}")
        else:
            raise AssertionError("a statement after an error was not refused with 25P02")
    conn.rollback()
    expect(
        conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE,
        f"transaction status {conn.info.transaction_status!r} after rollback",
    )
    expect(count("name = %s", ("before-error",)) == 0, "the failed transaction's row persisted")


@check
def unique_violation_is_23505():
    try:
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {TABLE} (name) VALUES (%s)", ("alice",))
    except errors.UniqueViolation as e:
        expect(e.sqlstate == "23505", f"sqlstate {e.sqlstate}")
    else:
        raise AssertionError("a duplicate name did not raise UniqueViolation")
    finally:
        conn.rollback()
    try:
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {TABLE} (id, name) VALUES (%s, %s)", (1, "dup-pk"))
    except errors.UniqueViolation as e:
        expect(e.sqlstate == "23505", f"sqlstate {e.sqlstate}")
    else:
        raise AssertionError("a duplicate primary key did not raise UniqueViolation")
    finally:
        conn.rollback()


@check
def executemany_inserts_every_row():
    rows = [
        {**{c: None for c in COLUMNS}, "name": f"many-{i}", "qty": i, "flag": i % 2 == 0,
         "price": decimal.Decimal(i) / 4, "day": datetime.date(2024, 1, 1) + datetime.timedelta(i)}
        for i in range(200)
    ]
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {TABLE} (name, qty, flag, price, day) "
            "VALUES (%(name)s, %(qty)s, %(flag)s, %(price)s, %(day)s)",
            rows,
        )
        expect(cur.rowcount == 200, f"executemany rowcount {cur.rowcount}, expected 200")
    conn.commit()
    expect(count("name LIKE %s", ("many-%",)) == 200, "executemany rows missing")
    cur = conn.execute(
        f"SELECT sum(qty), count(*) FILTER (WHERE flag) FROM {TABLE} WHERE name LIKE 'many-%%'"
    )
    total, flagged = cur.fetchone()
    conn.rollback()
    expect(total == sum(range(200)), f"sum(qty) {total}")
    expect(flagged == 100, f"flagged count {flagged}")
    cur = conn.execute(f"SELECT price, day FROM {TABLE} WHERE name = %s", ("many-7",))
    expect(
        cur.fetchone() == (decimal.Decimal("1.75"), datetime.date(2024, 1, 8)),
        "executemany row many-7 has wrong values",
    )
    conn.rollback()


@check
def fetches_many_rows():
    with conn.cursor() as cur:
        cur.execute("SELECT x, x * 2 AS y FROM generate_series(1, 1000) AS x")
        first = cur.fetchmany(10)
        rest = cur.fetchall()
    conn.rollback()
    rows = first + rest
    expect(len(rows) == 1000, f"generate_series gave {len(rows)} rows")
    expect(rows[0] == (1, 2) and rows[-1] == (1000, 2000), f"ends {rows[0]} {rows[-1]}")
    expect(all(type(x) is int and y == 2 * x for x, y in rows), "generate_series values wrong")
    cur = conn.execute("SELECT * FROM generate_series(1, 3)")
    expect(cur.fetchall() == [(1,), (2,), (3,)], "SELECT * FROM generate_series gave wrong rows")
    expect(cur.description[0].name == "generate_series", f"column {cur.description[0].name}")
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, name FROM {TABLE} ORDER BY id")
        all_rows = cur.fetchall()
    conn.rollback()
    expect(len(all_rows) == count(), f"fetched {len(all_rows)} table rows")


@check
def server_side_prepared_statements():
    # prepare_threshold is 5: from the sixth execution psycopg uses a named prepared statement.
    with connect(autocommit=True) as other:
        for i in range(8):
            cur = other.execute(f"SELECT name, qty FROM {TABLE} WHERE name = %s", ("alice",))
            rows = cur.fetchall()
            expect(rows == [("alice", 42)], f"prepared run {i} gave {rows!r}")
        for i in range(8):
            other.execute(f"UPDATE {TABLE} SET big = %s WHERE name = %s", (i, "committed"))
        cur = other.execute(f"SELECT big FROM {TABLE} WHERE name = %s", ("committed",))
        expect(cur.fetchone() == (7,), "prepared UPDATE did not apply")


@known_gap("server-side cursors are not supported: DECLARE/FETCH/CLOSE are refused with 0A000")
def server_side_cursor():
    with conn.cursor(name="drv_cursor") as cur:
        cur.execute("SELECT x FROM generate_series(1, 300) AS x")
        got = [r[0] for r in cur.fetchmany(100)]
        got += [r[0] for r in cur]
    conn.rollback()
    expect(got == list(range(1, 301)), f"server-side cursor gave {len(got)} rows")


@check
def pipeline_mode():
    with connect(autocommit=True) as other:
        with other.pipeline():
            cur1 = other.execute(f"INSERT INTO {TABLE} (name, qty) VALUES (%s, %s)", ("pipe", 5))
            cur2 = other.execute(f"SELECT qty FROM {TABLE} WHERE name = %s", ("pipe",))
        expect(cur1.rowcount == 1, f"pipelined INSERT rowcount {cur1.rowcount}")
        expect(cur2.fetchone() == (5,), "pipelined SELECT gave the wrong row")


conn.close()
for gap in gaps:
    print(f"KNOWN GAP (not run) {gap}")
for failure in failures:
    print(f"FAIL {failure}", file=sys.stderr)
print(f"psycopg {psycopg.__version__}: {len(passed)} checks ok, {len(failures)} failing")
sys.exit(1 if failures else 0)
