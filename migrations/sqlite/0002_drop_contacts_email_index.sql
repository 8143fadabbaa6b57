-- No query looks contacts up by e-mail (suppressions are matched on the
-- lower-cased address, which this index cannot serve), and keeping it cost
-- a random B-tree insert for every imported contact.
DROP INDEX IF EXISTS contacts_email;
