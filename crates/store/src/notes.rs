//! Each user's notes, for the built-in notes toolset. Every query names the owner: there
//! is no method that reads or changes a note without the user id, so one user can neither
//! see nor learn of another's notes, whatever id they send.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sql::Dialect;
use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub id: String,
    pub title: String,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set while the note is in the trash.
    pub deleted_at: Option<i64>,
}

/// One search result, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteHit {
    pub id: String,
    pub title: String,
    /// A short excerpt of the body around the matching words.
    pub snippet: String,
    /// Higher is better.
    pub score: f64,
}

/// Where a listing continues: the last note of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotesAfter {
    pub updated_at: i64,
    pub id: String,
}

const COLS: &str = "id, title, body, created_at, updated_at, deleted_at";

fn note_from(r: &AnyRow) -> Result<Note> {
    Ok(Note {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        deleted_at: r.try_get::<Option<i64>, _>("deleted_at")?,
    })
}

/// One word of a search query: lower-case letters and digits only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    pub word: String,
    /// Written with a trailing `*`: matches every word that starts with `word`.
    pub prefix: bool,
}

/// The words of a search query, lowercased, at most 16; everything else (quotes, operators,
/// SQL or FTS syntax) is dropped: the query language is plain words, all of which must
/// match as whole words, and a word of two or more characters written with a trailing `*`
/// matches as a prefix (`plan*` finds "plans" and "planning").
pub fn search_terms(query: &str) -> Vec<SearchTerm> {
    let mut terms = Vec::new();
    let mut rest = query;
    while terms.len() < 16 {
        let Some(start) = rest.find(char::is_alphanumeric) else {
            break;
        };
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(rest.len());
        let word = rest[..end].to_lowercase();
        rest = &rest[end..];
        let prefix = rest.starts_with('*') && word.chars().count() >= 2;
        terms.push(SearchTerm { word, prefix });
    }
    terms
}

/// The owner's mark on every word of their notes in the SQLite full-text index (migration
/// 8): the user id in lower-case hex, then `x`. Hex has no `x`, so where a mark ends is never
/// in doubt and no two users' marked words can be equal. A search looks up its marked words
/// only, so it reads the owner's postings and no one else's.
fn owner_mark(user: &str) -> String {
    let mut mark: String = user.bytes().map(|b| format!("{b:02x}")).collect();
    mark.push('x');
    mark
}

/// `text` as the SQLite index stores it: each word (split as [`search_terms`] splits a
/// query, lowercased) with the owner's mark in front.
fn marked_words(mark: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(mark);
        out.push_str(&word.to_lowercase());
    }
    out
}

/// Words in a search hit's snippet.
const SNIPPET_WORDS: usize = 16;

/// About `words` words of `body` around the first word that one of `terms` matches, with
/// `…` where text was cut. The start of the body when no word matches as written (the index
/// also matches without diacritics).
pub fn snippet(body: &str, terms: &[SearchTerm], words: usize) -> String {
    let all: Vec<&str> = body.split_whitespace().collect();
    let hit = all
        .iter()
        .position(|w| {
            let w = w
                .split(|c: char| !c.is_alphanumeric())
                .find(|part| !part.is_empty())
                .unwrap_or("")
                .to_lowercase();
            terms.iter().any(|t| {
                if t.prefix {
                    w.starts_with(t.word.as_str())
                } else {
                    w == t.word
                }
            })
        })
        .unwrap_or(0);
    let start = hit.saturating_sub(words / 3);
    let end = (start + words).min(all.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.push_str(&all[start..end].join(" "));
    if end < all.len() {
        out.push('…');
    }
    out
}

impl Store {
    pub async fn create_note(
        &self,
        user: &str,
        id: &str,
        title: &str,
        body: &str,
        now: i64,
    ) -> Result<Note> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO notes (id, user_id, title, body, created_at, updated_at, deleted_at) VALUES ($1, $2, $3, $4, $5, $5, NULL)",
        )
        .bind(id)
        .bind(user)
        .bind(title)
        .bind(body)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.index_note(&mut tx, user, id, title, body).await?;
        tx.commit().await?;
        Ok(Note {
            id: id.to_owned(),
            title: title.to_owned(),
            body: body.to_owned(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        })
    }

    /// The user's note (in the trash too, when `include_trash`).
    pub async fn note(&self, user: &str, id: &str, include_trash: bool) -> Result<Option<Note>> {
        let row = sqlx::query(&format!(
            "SELECT {COLS} FROM notes WHERE user_id = $1 AND id = $2 AND ($3 = 1 OR deleted_at IS NULL)"
        ))
        .bind(user)
        .bind(id)
        .bind(i64::from(include_trash))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(note_from).transpose()
    }

    /// Changes a live note; `None` when the user has no such live note.
    pub async fn update_note(
        &self,
        user: &str,
        id: &str,
        title: Option<&str>,
        body: Option<&str>,
        now: i64,
    ) -> Result<Option<Note>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE notes SET title = COALESCE($1, title), body = COALESCE($2, body), updated_at = $3
             WHERE user_id = $4 AND id = $5 AND deleted_at IS NULL RETURNING {COLS}"
        ))
        .bind(title)
        .bind(body)
        .bind(now)
        .bind(user)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        self.reindexed(tx, user, row).await
    }

    /// Moves a live note to the trash; true when it did.
    pub async fn trash_note(&self, user: &str, id: &str, now: i64) -> Result<bool> {
        let r = sqlx::query("UPDATE notes SET deleted_at = $1 WHERE user_id = $2 AND id = $3 AND deleted_at IS NULL")
            .bind(now)
            .bind(user)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Takes a note out of the trash if it went in after `since`.
    pub async fn restore_note(&self, user: &str, id: &str, since: i64) -> Result<Option<Note>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE notes SET deleted_at = NULL WHERE user_id = $1 AND id = $2 AND deleted_at IS NOT NULL AND deleted_at >= $3 RETURNING {COLS}"
        ))
        .bind(user)
        .bind(id)
        .bind(since)
        .fetch_optional(&mut *tx)
        .await?;
        self.reindexed(tx, user, row).await
    }

    /// Finishes a change that left the note `row` live: puts it back in the index (the
    /// database took it out when the change began: migration 8) and commits.
    async fn reindexed(
        &self,
        mut tx: Transaction<'_, Any>,
        user: &str,
        row: Option<AnyRow>,
    ) -> Result<Option<Note>> {
        let note = row.as_ref().map(note_from).transpose()?;
        if let Some(n) = &note {
            self.index_note(&mut tx, user, &n.id, &n.title, &n.body)
                .await?;
        }
        tx.commit().await?;
        Ok(note)
    }

    /// Adds the user's live note `id` to the SQLite full-text index, its words marked as
    /// the user's ([`owner_mark`]). The database takes notes out by itself (triggers on
    /// delete, trash and change); putting one in needs the marking, done here. PostgreSQL
    /// keeps its own index (a generated column).
    async fn index_note(
        &self,
        tx: &mut Transaction<'_, Any>,
        user: &str,
        id: &str,
        title: &str,
        body: &str,
    ) -> Result<()> {
        if self.dialect != Dialect::Sqlite {
            return Ok(());
        }
        let mark = owner_mark(user);
        sqlx::query(
            "INSERT INTO notes_words (rowid, title, body)
             SELECT rowid, $1, $2 FROM notes WHERE user_id = $3 AND id = $4 AND deleted_at IS NULL",
        )
        .bind(marked_words(&mark, title))
        .bind(marked_words(&mark, body))
        .bind(user)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Rebuilds the SQLite full-text index from the notes table, inside the migration that
    /// changed its form (`tx`), a thousand notes at a time. Returns how many it indexed.
    pub(crate) async fn reindex_notes(tx: &mut Transaction<'_, Any>) -> Result<u64> {
        sqlx::query("DELETE FROM notes_words")
            .execute(&mut **tx)
            .await?;
        let (mut after, mut done) = (0_i64, 0_u64);
        loop {
            let batch = sqlx::query(
                "SELECT rowid AS seq, user_id, title, body FROM notes
                 WHERE rowid > $1 AND deleted_at IS NULL ORDER BY rowid LIMIT 1000",
            )
            .bind(after)
            .fetch_all(&mut **tx)
            .await?;
            let Some(last) = batch.last() else {
                return Ok(done);
            };
            after = last.try_get("seq")?;
            for r in &batch {
                let mark = owner_mark(&r.try_get::<String, _>("user_id")?);
                sqlx::query("INSERT INTO notes_words (rowid, title, body) VALUES ($1, $2, $3)")
                    .bind(r.try_get::<i64, _>("seq")?)
                    .bind(marked_words(&mark, &r.try_get::<String, _>("title")?))
                    .bind(marked_words(&mark, &r.try_get::<String, _>("body")?))
                    .execute(&mut **tx)
                    .await?;
            }
            done += batch.len() as u64;
        }
    }

    /// Deletes for good the notes trashed before `before`.
    pub async fn purge_trash(&self, before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM notes WHERE deleted_at IS NOT NULL AND deleted_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// The user's live notes, most recently changed first, `limit` at a time.
    pub async fn list_notes(
        &self,
        user: &str,
        after: Option<&NotesAfter>,
        limit: i64,
    ) -> Result<Vec<Note>> {
        let rows = match after {
            None => {
                sqlx::query(&format!(
                    "SELECT {COLS} FROM notes WHERE user_id = $1 AND deleted_at IS NULL ORDER BY updated_at DESC, id DESC LIMIT $2"
                ))
                .bind(user)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some(a) => {
                sqlx::query(&format!(
                    "SELECT {COLS} FROM notes WHERE user_id = $1 AND deleted_at IS NULL
                     AND (updated_at < $2 OR (updated_at = $2 AND id < $3))
                     ORDER BY updated_at DESC, id DESC LIMIT $4"
                ))
                .bind(user)
                .bind(a.updated_at)
                .bind(&a.id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(note_from).collect()
    }

    pub async fn count_notes(&self, user: &str) -> Result<i64> {
        Ok(
            sqlx::query(
                "SELECT COUNT(*) AS n FROM notes WHERE user_id = $1 AND deleted_at IS NULL",
            )
            .bind(user)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?,
        )
    }

    /// Full-text search in the user's live notes: every word of `terms` (see
    /// [`search_terms`]) must appear, as a whole word or, if marked so, as a prefix; title
    /// matches rank higher.
    pub async fn search_notes(
        &self,
        user: &str,
        terms: &[SearchTerm],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<NoteHit>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Rank first and fetch the text of the page only: the snippet is cut in Rust from the
        // few bodies returned, not by the database for every match before sorting.
        let rows = match self.dialect {
            Dialect::Sqlite => {
                // Each term is looked up as the owner's marked word (see `owner_mark`), so the
                // index reads this user's postings only and ranks inside the index, which
                // holds live notes only. Terms hold only letters and digits, so quoting them
                // is enough. The page's rows are checked against the notes table again.
                // CROSS JOIN keeps that order: left to itself, SQLite 3.46 scans the user's
                // whole notes_by_user range and probes the ranked page.
                let mark = owner_mark(user);
                let expr = terms
                    .iter()
                    .map(|t| {
                        let star = if t.prefix { "*" } else { "" };
                        format!("\"{mark}{}\"{star}", t.word)
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                sqlx::query(
                    "SELECT n.id AS id, n.title AS title, n.body AS body, r.score AS score
                     FROM (SELECT rowid AS rid, -bm25(notes_words, 5.0, 1.0) AS score
                           FROM notes_words WHERE notes_words MATCH $1
                           ORDER BY score DESC, rowid LIMIT $3 OFFSET $4) r
                     CROSS JOIN notes n ON n.rowid = r.rid
                     WHERE n.user_id = $2 AND n.deleted_at IS NULL
                     ORDER BY r.score DESC, r.rid",
                )
                .bind(expr)
                .bind(user)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
            }
            Dialect::Postgres => {
                let words: Vec<String> = terms
                    .iter()
                    .map(|t| {
                        let star = if t.prefix { ":*" } else { "" };
                        format!("{}{star}", t.word)
                    })
                    .collect();
                sqlx::query(
                    "SELECT n.id AS id, n.title AS title, n.body AS body, r.score AS score
                     FROM (SELECT id, ts_rank(search, q)::float8 AS score
                           FROM notes, to_tsquery('simple', $1) AS q
                           WHERE user_id = $2 AND deleted_at IS NULL AND search @@ q
                           ORDER BY score DESC, id LIMIT $3 OFFSET $4) r
                     JOIN notes n ON n.id = r.id
                     ORDER BY r.score DESC, r.id",
                )
                .bind(words.join(" & "))
                .bind(user)
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(NoteHit {
                    id: r.try_get("id")?,
                    title: r.try_get("title")?,
                    snippet: snippet(&r.try_get::<String, _>("body")?, terms, SNIPPET_WORDS),
                    score: r.try_get("score")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_centre_on_the_first_match_and_mark_cuts() {
        let body = (1..=40)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let s = snippet(&body, &search_terms("w20"), 6);
        assert_eq!(s, "…w18 w19 w20 w21 w22 w23…");
        // Prefix and case: "Coffee," matches the term "cof*", not the word "cof".
        let text = "Tea first, then more tea. Then Coffee, always and ever and ever.";
        assert_eq!(
            snippet(text, &search_terms("cof*"), 4),
            "…Then Coffee, always and…"
        );
        assert_eq!(
            snippet(text, &search_terms("cof"), 4),
            "Tea first, then more…"
        );
        // No word matches as written: the start of the body.
        assert_eq!(snippet("a b c d", &search_terms("zz"), 2), "a b…");
        assert_eq!(snippet("", &search_terms("zz"), 2), "");
    }

    #[test]
    fn queries_are_plain_words_with_an_optional_prefix_star() {
        let t = |q: &str| {
            search_terms(q)
                .into_iter()
                .map(|t| format!("{}{}", t.word, if t.prefix { "*" } else { "" }))
                .collect::<Vec<_>>()
        };
        assert_eq!(t("Plan* for Q3"), ["plan*", "for", "q3"]);
        assert_eq!(
            t("\"a b\" OR c* -d NEAR(e f)"),
            ["a", "b", "or", "c", "d", "near", "e", "f"]
        );
        assert_eq!(t("owner:bob' ; DROP--"), ["owner", "bob", "drop"]);
        assert_eq!(t("*x** ab*cd"), ["x", "ab*", "cd"]);
        assert!(t("\"*()").is_empty());
        assert_eq!(t(&"w ".repeat(40)).len(), 16, "at most 16 words");
    }

    #[test]
    fn indexed_words_carry_an_owner_mark_that_cannot_be_confused() {
        assert_eq!(owner_mark("u_a"), "755f61x");
        assert_eq!(
            marked_words("ab", "Hello, World! ÉTÉ 42"),
            "abhello abworld abété ab42"
        );
        assert_eq!(marked_words("ab", " ,;"), "");
        // Without the closing x, hex("u_a") + "62foo" would equal hex("u_ab") + "foo".
        assert_ne!(
            format!("{}62foo", owner_mark("u_a")),
            format!("{}foo", owner_mark("u_ab"))
        );
    }
}
