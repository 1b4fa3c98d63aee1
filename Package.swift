// swift-tools-version:6.0
// The workshop: ten step executables, each a complete snapshot of the runtime after one more idea,
// on top of one support module (and its C shim) that holds only what no chapter teaches.
import PackageDescription

let steps = [
    "step01", "step02", "step03", "step04", "step05", "step06", "step07", "step08", "step09", "step10",
]

let package = Package(
    name: "mydocker-swift",
    products: steps.map { .executable(name: $0, targets: [$0]) },
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
        },
    swiftLanguageModes: [.v6]
)
