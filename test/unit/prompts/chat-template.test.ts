/** Python's `==`/`!=` inside chat templates (the library compares with JavaScript's loose equality). */
import { describe, expect, it } from "vitest";
import { pythonEquals, renderChatTemplate } from "../../../src/prompts/chat-template.ts";

const render = (source: string): string => renderChatTemplate(source, [{ role: "user", content: "" }], { addGenerationPrompt: false });

describe("chat template equality compares as Python's Jinja2", () => {
  it.each([
    ["'' == false", "False"],
    ["'' != false", "True"],
    ["0 == false", "True"],
    ["1 == true", "True"],
    ["'1' == 1", "False"],
    ["1 == 1.0", "True"],
    ["none == none", "True"],
    ["messages[0]['content'] != false", "True"],
    ["messages[0]['role'] == 'user'", "True"],
    ["[1, 'a'] == [1, 'a']", "True"],
    ["[1, 'a'] != [1, 'b']", "True"],
  ])("%s is %s", (expression, expected) => {
    expect(render(`{% if ${expression} %}True{% else %}False{% endif %}`)).toBe(expected);
  });

  it("keeps `not`, `and`, `or` around the rewritten comparisons", () => {
    expect(render("{% if not ('' == false) and (1 == 1 or x) %}yes{% else %}no{% endif %}")).toBe("yes");
  });

  it("compares maps key by key", () => {
    expect(pythonEquals(new Map([["a", 1]]), new Map([["a", true]]))).toBe(true);
    expect(pythonEquals(new Map([["a", 1]]), new Map([["b", 1]]))).toBe(false);
  });
});
