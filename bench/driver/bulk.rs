//! The ingest baseline: raw NDJSON lines inserted as fast as the database allows, without Kiln.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use sqlx::Connection;

use crate::report::BulkResult;

/// The non-empty lines of `path`, or of every `*.ndjson` file in it (sorted) if it is a directory.
pub fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("cannot list {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut lines = Vec::new();
    for f in &files {
        let data = std::fs::read(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        lines
            .extend(data.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).map(<[u8]>::to_vec));
    }
    if lines.is_empty() {
        return Err(format!("{}: no NDJSON lines", path.display()));
    }
    Ok(lines)
}

/// Inserts `lines` into a fresh `bench_bulk` table (dropped afterwards) and times the insert alone.
pub async fn run(database_url: &str, lines: &[Vec<u8>]) -> Result<BulkResult, String> {
    let bytes: u64 = lines.iter().map(|l| l.len() as u64).sum();
    let (backend, method, rows, seconds) = if database_url.starts_with("postgres") {
        postgres(database_url, lines).await.map_err(|e| format!("postgres: {e}"))?
    } else if database_url.starts_with("sqlite") {
        sqlite(database_url, lines).await.map_err(|e| format!("sqlite: {e}"))?
    } else {
        return Err("--database-url must start with postgres:// or sqlite:".into());
    };
    if rows != lines.len() as u64 {
        return Err(format!("inserted {rows} rows of {}", lines.len()));
    }
    Ok(BulkResult {
        backend: backend.into(),
        method: method.into(),
        rows,
        bytes,
        seconds,
        rows_per_s: rows as f64 / seconds,
        mb_per_s: bytes as f64 / 1e6 / seconds,
        timestamp: chrono::Utc::now().to_rfc3339(),
    })
}

type Outcome = (&'static str, &'static str, u64, f64);

/// `COPY bench_bulk(json) FROM STDIN (FORMAT binary)` through `copy_in_raw`, in ~1 MB chunks.
async fn postgres(url: &str, lines: &[Vec<u8>]) -> Result<Outcome, sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query("DROP TABLE IF EXISTS bench_bulk").execute(&mut conn).await?;
    sqlx::query("CREATE TABLE bench_bulk (id bigserial, json bytea NOT NULL)").execute(&mut conn).await?;
    let started = Instant::now();
    let mut copy = conn.copy_in_raw("COPY bench_bulk (json) FROM STDIN WITH (FORMAT binary)").await?;
    // Binary COPY: signature, flags, header extension length; then per row a field count and one
    // length-prefixed field; then the -1 trailer.
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    for line in lines {
        buf.extend_from_slice(&1i16.to_be_bytes());
        buf.extend_from_slice(&(line.len() as i32).to_be_bytes());
        buf.extend_from_slice(line);
        if buf.len() >= 1 << 20 {
            copy.send(std::mem::take(&mut buf)).await?;
            buf.reserve(1 << 20);
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf).await?;
    let rows = copy.finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_bulk").execute(&mut conn).await?;
    conn.close().await?;
    Ok(("postgres", "COPY FROM STDIN (binary)", rows, seconds))
}

/// Rows per multi-row INSERT on SQLite (amortizes the driver's per-statement round trip).
const SQLITE_BATCH: usize = 100;

/// `INSERT INTO bench_bulk (json) VALUES (?), (?), …` with `rows` placeholders.
fn sqlite_insert(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO bench_bulk (json) VALUES (?)");
    for _ in 1..rows {
        sql.push_str(", (?)");
    }
    sql
}

/// One transaction of prepared multi-row INSERTs, with Kiln's durability settings (WAL, synchronous=FULL).
async fn sqlite(url: &str, lines: &[Vec<u8>]) -> Result<Outcome, sqlx::Error> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    sqlx::query("DROP TABLE IF EXISTS bench_bulk").execute(&mut conn).await?;
    sqlx::query("CREATE TABLE bench_bulk (id INTEGER PRIMARY KEY, json BLOB NOT NULL)").execute(&mut conn).await?;
    let full = sqlite_insert(SQLITE_BATCH);
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    let mut rows = 0;
    for chunk in lines.chunks(SQLITE_BATCH) {
        // Only placeholders: no data is ever spliced into this SQL.
        let sql = if chunk.len() == SQLITE_BATCH { full.clone() } else { sqlite_insert(chunk.len()) };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for line in chunk {
            query = query.bind(&line[..]);
        }
        rows += query.execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    let seconds = started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_bulk").execute(&mut conn).await?;
    conn.close().await?;
    Ok(("sqlite", "one transaction of prepared 100-row INSERTs", rows, seconds))
}
