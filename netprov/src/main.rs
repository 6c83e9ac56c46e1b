fn main() {
    std::process::exit(netprov::cli::main());
}
