/**
 * The import graph of a TypeScript source tree, and its circles. Every
 * relative import counts, `import type` and `export … from` included (a type
 * circle still ties two files together), and `import("…")` too. Folders are
 * the first path segment under the root (`completions`, `config`; files at
 * the root are the folder "."), since that is the unit a reader moves between.
 */
import fs from "node:fs";
import path from "node:path";

/** Specifiers of every import and re-export in one file's text (comments left out). */
export function importSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[\w*{}\s,$]*?\bfrom\s*["']([^"']+)["']/g, // import x from, import type {…} from, export {…} from, export * from
    /\bimport\s*["']([^"']+)["']/g, // import "side-effect"
    /\bimport\(\s*["']([^"']+)["']\s*\)/g, // import("…")
  ];
  return patterns.flatMap((pattern) => [...code.matchAll(pattern)].map((match) => match[1]!));
}

export type Graph = Map<string, Set<string>>;

/** Files (paths relative to `root`) and the files they import, for every .ts file under `root`. */
export function fileGraph(root: string): Graph {
  const graph: Graph = new Map();
  for (const file of tsFiles(root)) {
    const from = path.relative(root, file);
    const targets = new Set<string>();
    for (const specifier of importSpecifiers(fs.readFileSync(file, "utf8"))) {
      if (!specifier.startsWith(".")) continue;
      const target = resolveImport(path.dirname(file), specifier);
      if (target?.startsWith(root + path.sep)) targets.add(path.relative(root, target));
    }
    graph.set(from, targets);
  }
  return graph;
}

/** The folder graph of a file graph: an edge between two folders when a file of one imports a file of the other. */
export function folderGraph(files: Graph): Graph {
  const folderOf = (file: string) => (file.includes(path.sep) ? file.split(path.sep)[0]! : ".");
  const graph: Graph = new Map();
  for (const [from, targets] of files) {
    const edges = graph.get(folderOf(from)) ?? new Set<string>();
    for (const target of targets) if (folderOf(target) !== folderOf(from)) edges.add(folderOf(target));
    graph.set(folderOf(from), edges);
  }
  return graph;
}

/**
 * One circle per strongly connected group of nodes (Tarjan), as a path that
 * starts and ends at the same node: `["a.ts", "b.ts", "a.ts"]`.
 */
export function findCycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  let counter = 0;
  const visit = (node: string) => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const group: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      group.push(member);
    } while (member !== node);
    if (group.length > 1 || graph.get(node)?.has(node)) groups.push(group);
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) visit(node);
  return groups.map((group) => circleThrough(graph, new Set(group)));
}

/** A shortest circle through the group's first node (by name), staying inside the group. */
function circleThrough(graph: Graph, group: Set<string>): string[] {
  const start = [...group].sort()[0]!;
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const next of [...(graph.get(node) ?? [])].sort()) {
      if (!group.has(next)) continue;
      if (next === start) {
        const circle = [start];
        for (let at: string | undefined = node; at !== start && at !== undefined; at = previous.get(at)) circle.splice(1, 0, at);
        return [...circle, start];
      }
      if (!previous.has(next)) {
        previous.set(next, node);
        queue.push(next);
      }
    }
  }
  return [start, start];
}

function resolveImport(dir: string, specifier: string): string | undefined {
  const base = path.resolve(dir, specifier);
  const candidates = [base, base.replace(/\.js$/, ".ts"), `${base}.ts`, path.join(base, "index.ts")];
  return candidates.find((candidate) => candidate.endsWith(".ts") && fs.existsSync(candidate) && fs.statSync(candidate).isFile());
}

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(full);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [full] : [];
  });
}
