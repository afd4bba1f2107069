#!/usr/bin/env python3
"""Bulk-provision bench users b0..b(N-1)@REALM with one password (issue 6).

  provision.py --users N [--realm R] [--password P] [--sipwarden CREDS_DB] [--kamailio KAM_DB]

--sipwarden: rows into sipwarden's credentials.db, which must already exist
  (create it with `sipwarden user add b0@REALM --password-stdin`): HA1 per
  algorithm and H(user:realm) for userhash, exactly as `user add` computes
  them (one CLI process per user would take minutes for 1M users).
--kamailio: a new Kamailio SQLite DB (version + subscriber tables from the
  Debian package's schema) with the precomputed MD5 HA1 in `ha1`.
"""
import argparse, hashlib, sqlite3, time

KAM_SCHEMA = "/usr/share/kamailio/db_sqlite"


def h(name, s):
    return hashlib.new(name, s.encode()).hexdigest()


def rows(n, realm, pw):
    for i in range(n):
        u = "b%d" % i
        a = "%s:%s:%s" % (u, realm, pw)
        ur = "%s:%s" % (u, realm)
        yield u, realm, h("md5", a), h("sha256", a), h("sha512_256", a), \
            h("md5", ur), h("sha256", ur), h("sha512_256", ur)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--realm", default="bench.test")
    ap.add_argument("--password", default="bench-password-1234")
    ap.add_argument("--sipwarden")
    ap.add_argument("--kamailio")
    o = ap.parse_args()
    now = int(time.time())
    if o.sipwarden:
        db = sqlite3.connect(o.sipwarden)
        db.execute("PRAGMA journal_mode=WAL")
        db.executemany(
            "INSERT OR REPLACE INTO credentials (username, realm, ha1_md5, ha1_sha256, "
            "ha1_sha512_256, uh_md5, uh_sha256, uh_sha512_256, enabled, aors, updated, source) "
            "VALUES (?,?,?,?,?,?,?,?,1,'',?,'bench')",
            (r + (now,) for r in rows(o.users, o.realm, o.password)))
        db.commit()
        db.close()
    if o.kamailio:
        db = sqlite3.connect(o.kamailio)
        for f in ("standard-create.sql", "auth_db-create.sql"):
            with open("%s/%s" % (KAM_SCHEMA, f)) as s:
                db.executescript(s.read())
        db.executemany("INSERT INTO subscriber (username, domain, ha1) VALUES (?,?,?)",
                       ((r[0], r[1], r[2]) for r in rows(o.users, o.realm, o.password)))
        db.commit()
        db.close()


if __name__ == "__main__":
    main()
