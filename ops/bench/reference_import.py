#!/usr/bin/env python3
"""Reference contact importer: the yardstick `ops/bench/import.sh` measures aviso against.

What a competent Python script would do with the registry export: read it with the
csv module, judge each phone on libphonenumber's metadata (the `phonenumbers`
package), check the e-mail with a simple regex, and write the valid rows to SQLite
with executemany, 1000 rows per transaction. The database is set up the way aviso
sets up its own (WAL, synchronous=NORMAL, the same indexes on contacts), so the
comparison is about the program, not about SQLite settings.

  reference_import.py FILE DB [--list NAME]

Prints one JSON line: {"read":N,"imported":N,"rejected":N,"seconds":S}.
"""
import argparse
import csv
import json
import re
import sqlite3
import sys
import time

import phonenumbers

BATCH = 1000
# One @, no spaces, a dot in the domain: what a careful script checks without a library.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ENTITIES = {"AGS", "DGO", "OAX", "TAM"}
LANGUAGES = {"es", "en"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, first_name TEXT, last_name TEXT,
    entity TEXT, country TEXT, email TEXT, phone TEXT, language TEXT NOT NULL,
    credential TEXT, population TEXT, modality TEXT);
CREATE INDEX IF NOT EXISTS contacts_email ON contacts (email);
CREATE INDEX IF NOT EXISTS contacts_phone ON contacts (phone);
CREATE TABLE IF NOT EXISTS lists (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS list_members (
    list_id INTEGER NOT NULL, contact_id TEXT NOT NULL, PRIMARY KEY (list_id, contact_id));
"""


def phone_e164(lada, telefono, country):
    """E.164 if libphonenumber says the number is valid, else None."""
    lada, telefono = lada.strip().lstrip("+"), telefono.strip()
    if not telefono:
        return None
    try:
        if lada:
            n = phonenumbers.parse(f"+{lada}{telefono}", None)
        else:
            n = phonenumbers.parse(telefono, country or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(n):
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("db")
    ap.add_argument("--list", default="bench")
    a = ap.parse_args()
    start = time.monotonic()
    db = sqlite3.connect(a.db, isolation_level=None)  # explicit BEGIN/COMMIT below
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    db.execute("INSERT OR IGNORE INTO lists (name) VALUES (?)", (a.list,))
    (list_id,) = db.execute("SELECT id FROM lists WHERE name = ?", (a.list,)).fetchone()

    def flush(contacts, members):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO contacts VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (id) DO UPDATE SET first_name=excluded.first_name, "
            "last_name=excluded.last_name, entity=excluded.entity, country=excluded.country, "
            "email=excluded.email, phone=excluded.phone, language=excluded.language, "
            "credential=excluded.credential, population=excluded.population, "
            "modality=excluded.modality",
            contacts,
        )
        db.executemany("INSERT OR IGNORE INTO list_members VALUES (?, ?)", members)
        db.execute("COMMIT")

    read = imported = rejected = 0
    contacts, members = [], []
    with open(a.file, newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            read += 1
            country = row["pais"].strip().upper()
            email = row["email"].strip()
            email = email if email and EMAIL.match(email) else None
            phone = phone_e164(row["lada"], row["telefono"], country)
            entity = row["entidad"].strip().upper()
            lang = row["idioma"].strip().lower() or "es"
            bad_email = row["email"].strip() and email is None
            bad_phone = row["telefono"].strip() and phone is None
            if (bad_email or bad_phone or entity not in ENTITIES or lang not in LANGUAGES
                    or (email is None and phone is None)):
                rejected += 1
                continue
            cid = row["id_contacto"].strip()
            contacts.append((cid, "citizen", row["nombre"].strip(), row["apellidos"].strip(),
                             entity, country, email, phone, lang, row["tipo_credencial"].strip(),
                             row["poblacion"].strip(), row["modalidad"].strip()))
            members.append((list_id, cid))
            if len(contacts) >= BATCH:
                flush(contacts, members)
                imported += len(contacts)
                contacts, members = [], []
    if contacts:
        flush(contacts, members)
        imported += len(contacts)
    db.close()
    print(json.dumps({"read": read, "imported": imported, "rejected": rejected,
                      "seconds": round(time.monotonic() - start, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
