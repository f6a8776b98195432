import JobService

@main
struct App {
    static func main() async throws {
        print("infinitetalk: not wired yet")
    }
}
