fn main() {
    for (_, yaml) in oksa::crd::documents() {
        println!("---\n{yaml}");
    }
}
