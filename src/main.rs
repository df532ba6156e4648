fn main() -> std::process::ExitCode {
    flowd::cli::main()
}
