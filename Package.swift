// swift-tools-version:6.0
// The workshop: ten step executables, each a complete snapshot of the runtime after one more idea,
// on top of one support module (and its C shim) that holds only what no chapter teaches.
import Foundation
import PackageDescription

let steps = [
    "step01", "step02", "step03", "step04", "step05", "step06", "step07", "step08", "step09", "step10",
]

// A learner's own step N (`Tests/Workbench/start N`) lives in the git-ignored folder Steps/mystepNN
// and builds as the executable mystepNN, with the same dependencies as the reference steps. Only
// the folders that exist become targets, so a fresh clone builds the ten references alone.
let workbenches =
    ((try? FileManager.default.contentsOfDirectory(atPath: Context.packageDirectory + "/Steps")) ?? [])
    .filter { $0.count == 8 && $0.hasPrefix("mystep") && $0.dropFirst(6).allSatisfy(\.isNumber) }
    .sorted()
// C folders a step may hold for code that must be linked into that step only (the exec
// constructor, Steps/stepNN/nsenter): in a workbench each one present becomes the C target
// mystepNN + folder, which the workbench's Swift imports (`start` renames the import).
let workbenchCFolders = ["nsenter"]
func cFolders(of workbench: String) -> [String] {
    workbenchCFolders.filter {
        FileManager.default.fileExists(atPath: Context.packageDirectory + "/Steps/\(workbench)/\($0)")
    }
}

let package = Package(
    name: "mydocker-swift",
    products: (steps + workbenches).map { .executable(name: $0, targets: [$0]) },
    targets: [
        .target(name: "CContainerSupport", path: "Sources/CContainerSupport"),
        .target(
            name: "ContainerSupport",
            dependencies: ["CContainerSupport"],
            path: "Sources/ContainerSupport"
        ),
        .testTarget(
            name: "StepTests",
            dependencies: ["CContainerSupport"],
            path: "Tests/StepTests"
        ),
    ]
        + steps.map { name in
            .executableTarget(
                name: name,
                dependencies: ["ContainerSupport", "CContainerSupport"],
                path: "Steps/" + name
            )
        }
        + workbenches.flatMap { name in
            cFolders(of: name).map { .target(name: name + $0, path: "Steps/\(name)/\($0)") }
                + [
                    .executableTarget(
                        name: name,
                        dependencies: ["ContainerSupport", "CContainerSupport"]
                            + cFolders(of: name).map { .target(name: name + $0) },
                        path: "Steps/" + name,
                        exclude: cFolders(of: name)
                    )
                ]
        },
    swiftLanguageModes: [.v6]
)
