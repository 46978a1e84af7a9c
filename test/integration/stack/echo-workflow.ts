export async function echo(message: string): Promise<string> {
  return `echo: ${message}`;
}
