import Foundation
import Testing

@testable import JobService

@Suite struct ConfigurationTests {
    @Test func defaultsAreThePublicContracts() throws {
        let configuration = try ServiceConfiguration.resolve(environment: [:])
        #expect(configuration.port == 8000)
        #expect(configuration.maxQueueSize == 20)
        #expect(configuration.uploadLimits.maxImageBytes == 10 * 1024 * 1024)
        #expect(configuration.uploadLimits.maxAudioBytes == 50 * 1024 * 1024)
        #expect(configuration.maxConcurrentJobs == nil)
        #expect(configuration.engine.name == "preview")
    }

    @Test func environmentVariablesSetValuesAndFlagsWin() throws {
        // Given both an environment variable and a flag for the port
        let environment = [
            "INFINITETALK_PORT": "9000", "INFINITETALK_MAX_QUEUE_SIZE": "5",
            "INFINITETALK_HEARTBEAT_TIMEOUT": "45s", "INFINITETALK_RETENTION": "off",
        ]
        // When resolved
        let configuration = try ServiceConfiguration.resolve(environment: environment, flags: ["port": "9100"])
        // Then the flag wins, and the others come from the environment
        #expect(configuration.port == 9100)
        #expect(configuration.maxQueueSize == 5)
        #expect(configuration.engine.heartbeatTimeout == .seconds(45))
        #expect(configuration.retention == nil)
    }

    @Test func badValuesNameTheirSource() {
        #expect(throws: ConfigurationError.self) {
            try ServiceConfiguration.resolve(environment: ["INFINITETALK_PORT": "eighty"])
        }
        do {
            _ = try ServiceConfiguration.resolve(environment: [:], flags: ["max-image-bytes": "lots"])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("--max-image-bytes"))
        }
    }

    @Test func inconsistentCombinationsAreRefused() {
        #expect(throws: ConfigurationError.self) {
            try ServiceConfiguration.resolve(
                environment: [:], flags: ["heartbeat-interval": "10s", "heartbeat-timeout": "5s"])
        }
        #expect(throws: ConfigurationError.self) {
            try ServiceConfiguration.resolve(environment: [:], flags: ["max-queue-size": "0"])
        }
    }

    @Test(arguments: [
        ("10485760", 10_485_760), ("512K", 524_288), ("10M", 10_485_760), ("10MB", 10_485_760),
        ("10MiB", 10_485_760), ("1G", 1_073_741_824),
    ])
    func byteCounts(text: String, bytes: Int) throws {
        #expect(try parseBytes(text) == bytes)
    }

    @Test(arguments: [
        ("30", Duration.seconds(30)), ("500ms", .milliseconds(500)), ("1.5s", .milliseconds(1500)),
        ("5m", .seconds(300)), ("2h", .seconds(7200)), ("7d", .seconds(604_800)),
    ])
    func durations(text: String, duration: Duration) throws {
        #expect(try parseDuration(text) == duration)
    }

    @Test func commandLinesSplitOnSpacesAndKeepQuotedArguments() throws {
        #expect(
            try splitCommandLine("python3 /a/fake.py --mode 'two words'") == [
                "python3", "/a/fake.py", "--mode", "two words",
            ])
        #expect(throws: ConfigurationError.self) { try splitCommandLine("python3 'open") }
    }

    @Test func theDefaultEngineCommandUsesTheRepositoryVenv() {
        // Given a repository root
        var configuration = ServiceConfiguration()
        configuration.engine.weights = "/weights"
        // When the repository is located
        configuration.locateRepository(root: "/repo")
        // Then the engine runs from its venv, the web page from <repo>/web
        #expect(
            configuration.engine.commandLine == [
                "/repo/.venv/bin/python", "-m", "infinitetalk_engine",
                "--engine", "preview", "--weights", "/weights",
            ])
        #expect(configuration.webDirectory == "/repo/web")
        #expect(configuration.engine.extraEnvironment["PYTHONPATH"]?.hasPrefix("/repo/engine") == true)
    }

    @Test func theEngineIsToldTheAudioLimitWithASecondOfSlack() throws {
        // Given a service that accepts at most 120 s of audio
        var configuration = try ServiceConfiguration.resolve(environment: [:], flags: ["max-audio-seconds": "120"])
        configuration.locateRepository(root: "/repo")
        // Then the engine it starts refuses what decodes longer, before any model work
        #expect(configuration.engineWithLimits.commandLine.suffix(2) == ["--max-audio-seconds", "121.0"])
    }

    @Test func anEngineCommandReplacesThePythonOne() throws {
        var configuration = try ServiceConfiguration.resolve(
            environment: [:], flags: ["engine-command": "python3 fake.py --max-jobs 2"])
        configuration.locateRepository(root: "/repo")
        #expect(configuration.engine.commandLine == ["python3", "fake.py", "--max-jobs", "2"])
    }

    @Test func theRepositoryRootIsFoundFromInsideIt() {
        let nested = (TestSupport.repositoryRoot as NSString).appendingPathComponent("Sources/JobService")
        #expect(RepositoryLocator.findRoot(from: [nested]) == TestSupport.repositoryRoot)
        #expect(RepositoryLocator.findRoot(from: ["/"]) == nil)
    }

    @Test func theReadmeConfigurationTableListsEverySetting() throws {
        let path = (TestSupport.repositoryRoot as NSString).appendingPathComponent("README.md")
        let document = try String(contentsOfFile: path, encoding: .utf8)
        for setting in ConfigurationSetting.all {
            #expect(document.contains("`--\(setting.flag)`"), "README.md lacks --\(setting.flag)")
            #expect(
                document.contains("`\(setting.environmentVariable)`"), "README.md lacks \(setting.environmentVariable)")
        }
    }
}
