//! Each user's notes, for the built-in notes toolset. Every query names the owner: there
//! is no method that reads or changes a note without the user id, so one user can neither
//! see nor learn of another's notes, whatever id they send.

use sqlx::Row;
use sqlx::any::AnyRow;

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

/// The words of a search query, lowercased, with everything else (quotes, operators,
/// SQL or FTS syntax) dropped: the query language is plain words, all of which must match.
pub fn search_terms(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(str::to_lowercase)
        .collect()
}

/// Words in a search hit's snippet.
const SNIPPET_WORDS: usize = 16;

/// About `words` words of `body` around the first word that starts with one of `terms`
/// (lower-case, as [`search_terms`] makes them), with `…` where text was cut. The start of
/// the body when no word matches as written (the index also matches without diacritics).
pub fn snippet(body: &str, terms: &[String], words: usize) -> String {
    let all: Vec<&str> = body.split_whitespace().collect();
    let hit = all
        .iter()
        .position(|w| {
            let w = w
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            terms.iter().any(|t| w.starts_with(t.as_str()))
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
        sqlx::query(
            "INSERT INTO notes (id, user_id, title, body, created_at, updated_at, deleted_at) VALUES ($1, $2, $3, $4, $5, $5, NULL)",
        )
        .bind(id)
        .bind(user)
        .bind(title)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
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
        let row = sqlx::query(&format!(
            "UPDATE notes SET title = COALESCE($1, title), body = COALESCE($2, body), updated_at = $3
             WHERE user_id = $4 AND id = $5 AND deleted_at IS NULL RETURNING {COLS}"
        ))
        .bind(title)
        .bind(body)
        .bind(now)
        .bind(user)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(note_from).transpose()
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
        let row = sqlx::query(&format!(
            "UPDATE notes SET deleted_at = NULL WHERE user_id = $1 AND id = $2 AND deleted_at IS NOT NULL AND deleted_at >= $3 RETURNING {COLS}"
        ))
        .bind(user)
        .bind(id)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(note_from).transpose()
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
    /// [`search_terms`]) must appear, the last one as a prefix; title matches rank higher.
    pub async fn search_notes(
        &self,
        user: &str,
        terms: &[String],
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
                // Terms hold only letters and digits, so quoting them is enough. The owner
                // restriction runs inside the index (one token, hex of the user id: see
                // migration 6), which holds live notes only (migration 7), so ranking reads
                // the index alone; the page's rows are checked again against the notes table.
                // CROSS JOIN keeps that order: left to itself, SQLite 3.46 scans the user's
                // whole notes_by_user range and probes the ranked page (25 ms, not 5).
                let words: Vec<String> = terms
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        if i + 1 == terms.len() {
                            format!("\"{t}\"*")
                        } else {
                            format!("\"{t}\"")
                        }
                    })
                    .collect();
                let owner: String = user.bytes().map(|b| format!("{b:02X}")).collect();
                let expr = format!(
                    "owner : \"{owner}\" AND {{title body}} : ({})",
                    words.join(" AND ")
                );
                sqlx::query(
                    "SELECT n.id AS id, n.title AS title, n.body AS body, r.score AS score
                     FROM (SELECT rowid AS rid, -bm25(notes_fts, 0.0, 5.0, 1.0) AS score
                           FROM notes_fts WHERE notes_fts MATCH $1
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
                let mut words: Vec<String> = terms.to_vec();
                if let Some(last) = words.last_mut() {
                    last.push_str(":*");
                }
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
        let terms = vec!["w20".to_owned()];
        let s = snippet(&body, &terms, 6);
        assert_eq!(s, "…w18 w19 w20 w21 w22 w23…");
        // Prefix and case: "Coffee," matches the term "cof".
        let s = snippet("Tea first. Then Coffee, always.", &["cof".to_owned()], 16);
        assert_eq!(s, "Tea first. Then Coffee, always.");
        // No word matches as written: the start of the body.
        assert_eq!(snippet("a b c d", &["zz".to_owned()], 2), "a b…");
        assert_eq!(snippet("", &["zz".to_owned()], 2), "");
    }
}
