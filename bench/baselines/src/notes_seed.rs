//! Fills a Portcullis database with notes for bench/tools.sh: `USERS` users with `PER_USER`
//! notes each, the first of them the existing account `OWNER` (whose token drives the load).
//! Text is pseudo-random words from a fixed vocabulary with a skewed (Zipf-like)
//! distribution, generated from a fixed seed, so every run searches the same corpus.
//!
//! Prints `note=<one of OWNER's note ids>` and `queries=<word,word two*,...>`: search terms
//! from common to rare (each matches between about 700 and a few of OWNER's 10,000 notes).
//!
//! Usage: notes-seed DATABASE_URL OWNER USERS PER_USER
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_store::{Store, User};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A vocabulary rank, skewed towards the common words.
    fn rank(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u * u) * n as f64) as usize
    }
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ren", "to", "sa", "vel", "di", "nor", "pa", "qui", "ba", "zen", "fu", "ga",
    "hol", "ti", "mar", "wes", "cu", "dra", "ny", "os", "ple",
];

fn vocabulary(n: usize) -> Vec<String> {
    let mut rng = Rng(0x005e_ed0f_ab1e);
    let mut words = std::collections::BTreeSet::new();
    while words.len() < n {
        let len = 2 + (rng.next() % 3) as usize;
        let w: String = (0..len)
            .map(|_| SYLLABLES[(rng.next() % SYLLABLES.len() as u64) as usize])
            .collect();
        words.insert(w);
    }
    let mut v: Vec<String> = words.into_iter().collect();
    // Shuffle so rank is unrelated to alphabetical order.
    for i in (1..v.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn words(rng: &mut Rng, vocab: &[String], n: usize) -> String {
    (0..n)
        .map(|_| vocab[rng.rank(vocab.len())].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: notes-seed DATABASE_URL OWNER USERS PER_USER";
    let url = args.get(1).expect(usage);
    let owner = args.get(2).expect(usage);
    let users: usize = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    let per_user: usize = args.get(4).and_then(|a| a.parse().ok()).expect(usage);
    let store = Store::open(url).await.expect("open the database");
    let owner_id = store
        .user_by_name(owner)
        .await
        .unwrap()
        .expect("the owner account exists (start the server once first)")
        .id;
    let mut ids = vec![owner_id.clone()];
    for i in 1..users {
        let id = format!("u_bench{i}");
        let user = User {
            id: id.clone(),
            username: format!("bench{i}"),
            password_hash: "!".into(),
            is_admin: false,
            disabled: false,
        };
        store.create_user(&user, 0).await.unwrap();
        ids.push(id);
    }
    let vocab = vocabulary(2000);
    let started = std::time::Instant::now();
    let mut first_note = String::new();
    // Users interleaved, as notes arrive in a real deployment; 8 writers at a time.
    let mut rng = Rng(0x00c0_ffee);
    let mut batch = Vec::new();
    for n in 0..per_user {
        for (u, user) in ids.iter().enumerate() {
            let title_len = 2 + (rng.next() % 5) as usize;
            let body_len = 20 + (rng.next() % 80) as usize;
            let id = format!("n_{u}_{n}");
            if u == 0 && n == 0 {
                first_note = id.clone();
            }
            batch.push((
                user.clone(),
                id,
                words(&mut rng, &vocab, title_len),
                words(&mut rng, &vocab, body_len),
                1_700_000_000 + (n * users + u) as i64,
            ));
        }
        if batch.len() >= 512 || n + 1 == per_user {
            let chunk = std::mem::take(&mut batch);
            let mut set = tokio::task::JoinSet::new();
            for part in chunk.chunks(chunk.len().div_ceil(8)) {
                let (store, part) = (store.clone(), part.to_vec());
                set.spawn(async move {
                    for (user, id, title, body, at) in part {
                        store
                            .create_note(&user, &id, &title, &body, at)
                            .await
                            .unwrap();
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        }
    }
    eprintln!(
        "seeded {} notes ({} users x {per_user}) in {:.1} s",
        users * per_user,
        users,
        started.elapsed().as_secs_f64()
    );
    // 40 words spread over the vocabulary from rank 100 down to rank 1,855 (from words in
    // about 7% of notes to words in well under 1%), and 20 pairs of them.
    let spread: Vec<&str> = (0..40).map(|i| vocab[100 + i * 45].as_str()).collect();
    let mut queries: Vec<String> = spread.iter().map(|w| (*w).to_owned()).collect();
    // The pairs ask for the second word as a prefix (`kalo mire*`), which costs more: the
    // index expands it over every word of the owner's that starts so.
    queries.extend(spread.chunks(2).map(|p| format!("{} {}*", p[0], p[1])));
    let mut hits = Vec::new();
    for q in &queries {
        let terms = portcullis_store::search_terms(q);
        hits.push(
            store
                .search_notes(&owner_id, &terms, 100_000, 0)
                .await
                .unwrap()
                .len(),
        );
    }
    hits.sort_unstable();
    println!(
        "matches=min {} median {} max {} of the owner's notes per query",
        hits[0],
        hits[hits.len() / 2],
        hits[hits.len() - 1]
    );
    println!("note={first_note}");
    println!("queries={}", queries.join(","));
    store.close().await;
}
