fn main() {
    println!("cairn {}", cairn::VERSION);
}
