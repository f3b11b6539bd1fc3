use netref::expose;

#[expose]
struct Thing;

struct Other;

#[expose(all)]
impl Other {
    #[exposed]
    fn ping(&self) -> i64 {
        1
    }
}

fn main() {}
