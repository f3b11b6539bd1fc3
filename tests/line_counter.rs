//! The line-counter example: a lent file and a lent callback, used by the server.
#[path = "../examples/line_counter.rs"]
mod line_counter;

#[tokio::test]
async fn the_line_counter_counts_through_a_lent_file_and_calls_back_per_line() {
    let dir = std::env::temp_dir().join(format!("netref-lc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lines.txt");
    let text: String = (1..=37).map(|i| format!("line number {i}\n")).collect();
    std::fs::write(&path, &text).unwrap();

    let (count, seen) = line_counter::run(path.to_str().unwrap()).await.unwrap();
    assert_eq!(count, 37);
    assert_eq!(seen.len(), 37, "the callback ran once per line");
    for (i, (n, line)) in seen.iter().enumerate() {
        assert_eq!(*n, i as u64 + 1);
        assert_eq!(line, &format!("line number {}\n", i + 1));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
