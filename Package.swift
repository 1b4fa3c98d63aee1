// swift-tools-version:6.0
// The workshop: one executable per step, each a complete snapshot of the runtime after one more idea,
// on top of one support module in two targets. ContainerSupport (Swift) holds the plumbing no
// chapter teaches: errors, flag and value parsing, tables, paths, file helpers. CContainerSupport
// (C) is the shim of system calls and constants Swift cannot reach itself (clone, unshare, setns,
// pivot_root, close_range, ...); chapters 01, 02 and 05 explain its functions where they first use
// them. The exec constructor that chapter 09 teaches is not in the shim: it is a C target in the
// folder of each step that has it, linked into those steps only.
import Foundation
import PackageDescription

let steps = [
    "step01", "step02", "step03", "step04", "step05", "step06", "step07", "step08", "step09", "step10",
    "step11", "step12",
]
// The steps that teach exec. Their C constructor (Steps/stepNN/nsenter) is a target of its own, in
// the step's folder, so that it is linked into these steps only: a constructor runs in every
// binary that contains it, and steps 01-08 must not. Step 12's constructor also drops privileges
// with the shim's hardening.c, the same code init uses.
let nsenterSteps: Set<String> = ["step09", "step10", "step11", "step12"]

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
        + nsenterSteps.sorted().map { name in
            .target(
                name: name + "nsenter", dependencies: ["CContainerSupport"], path: "Steps/\(name)/nsenter")
        }
        + steps.map { name in
            let nsenter = nsenterSteps.contains(name)
            return .executableTarget(
                name: name,
                dependencies: ["ContainerSupport", "CContainerSupport"]
                    + (nsenter ? [.target(name: name + "nsenter")] : []),
                path: "Steps/" + name,
                exclude: nsenter ? ["nsenter"] : []
            )
        }
        + workbenches.flatMap { name in
            cFolders(of: name).map {
                .target(name: name + $0, dependencies: ["CContainerSupport"], path: "Steps/\(name)/\($0)")
            }
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
